"""Word lists and templates for the titles and uploader names of the simulated world.

A title is written from its video's ``TitleStyle`` (bilipop.sim.popularity): a hook word, a number and an emoji
raise views, as the popularity model states; the topic, the template and the tag are noise.
"""

from __future__ import annotations

import random

from bilipop.sim.popularity import TitleStyle

# Topics by old tid (the world decides v2 ids; titles follow the old partition a video was filed under).
TOPICS: dict[int, list[str]] = {
    201: ["黑洞", "量子纠缠", "核聚变", "光速", "DNA", "疫苗", "恐龙灭绝", "宇宙膨胀", "火星", "引力波", "细胞", "大脑",
          "睡眠", "蚂蚁", "章鱼", "彩虹", "闪电", "地震", "火山", "超导体"],
    124: ["心理学效应", "拖延症", "原生家庭", "劳动法", "租房合同", "社恐", "焦虑", "认知偏差", "民法典", "冷暴力"],
    228: ["秦始皇", "三国", "大唐长安", "丝绸之路", "罗马帝国", "明朝", "敦煌壁画", "甲骨文", "二战", "宋朝人"],
    207: ["通货膨胀", "房价", "基金定投", "美联储", "奶茶店", "预制菜", "外卖平台", "直播带货", "黄金", "汇率"],
    208: ["高数", "考研英语", "线性代数", "四六级", "期末复习", "雅思口语", "高考数学", "笔记方法", "微积分",
          "有机化学"],
    209: ["面试", "简历", "职场沟通", "升职加薪", "裸辞", "副业", "时间管理", "Excel", "PPT", "跳槽"],
    229: ["配色", "字体设计", "Logo", "海报", "UI设计", "建筑", "摄影构图", "手绘", "3D建模", "包装设计"],
    122: ["Python", "CPU", "显卡", "树莓派", "Arduino", "Linux", "AI绘画", "机械键盘", "3D打印", "NAS"],
    21: ["城中村", "外卖骑手", "县城生活", "打工人", "早高峰", "菜市场", "相亲", "独居", "老小区", "夜市"],
    17: ["黑神话", "艾尔登法环", "塞尔达", "独立游戏", "速通", "魂类游戏", "开放世界", "像素游戏"],
    65: ["原神", "英雄联盟", "魔兽世界", "MMO", "副本", "天梯", "电竞", "版本更新"],
    172: ["王者荣耀", "手游", "抽卡", "和平精英", "二游", "卡池", "氪金", "新角色"],
    95: ["手机", "耳机", "平板", "相机", "充电宝", "手表", "开箱", "评测"],
    230: ["剪映", "Photoshop", "Notion", "浏览器插件", "效率软件", "输入法", "网盘", "AI工具"],
    231: ["Rust", "Java", "算法题", "数据库", "Docker", "前端", "GPU编程", "操作系统"],
    76: ["红烧肉", "家常菜", "烘焙", "火锅", "早餐", "减脂餐", "面条", "卤味"],
    212: ["探店", "路边摊", "自助餐", "网红店", "米其林", "苍蝇馆子", "夜宵", "食堂"],
}
#: The hook words of a title whose style has ``hook`` (the stated cause: bilipop.sim.popularity.TITLE_EFFECTS).
HOOKS = ["震惊！", "绝了！", "万万没想到，", "太离谱了！", "保姆级", "史上最全", "千万别错过："]
EMOJI = ["🔥", "😱", "🤯", "✨", "🚀", "💡", "👀", "😂"]
TAGS = ["科普", "干货", "熟肉", "中字", "合集", "vlog", "Q&A", "笔记"]
#: Titles without a number and without a hook word.
TEMPLATES_PLAIN = [
    "{topic}是什么？",
    "聊聊{topic}",
    "关于{topic}的一些思考",
    "{topic}入门",
    "{topic}的原理",
    "如何理解{topic}",
    "{topic}和{other}有什么关系",
    "为什么{topic}会这样？",
    "{topic}到底有多可怕？",
    "用{other}解释{topic}",
]
#: Titles with a number (and no hook word).
TEMPLATES_NUMBER = [
    "{n}分钟讲清{topic}",
    "{topic}的{n}个真相",
    "{topic}（第{n}讲）",
    "我花了{n}天研究{topic}",
    "关于{topic}的{n}个误解",
    "{n}张图理解{topic}",
]
NAME_PARTS_A = ["小", "老", "大", "阿", "一只", "会飞的", "爱吃", "不会", "认真的", "躺平的", "硬核"]
NAME_PARTS_B = ["物理", "历史", "数学", "猫", "鱼", "学长", "学姐", "老师", "教授", "工程师", "咸鱼", "柠檬", "团子"]
NAME_PARTS_C = ["君", "酱", "说", "同学", "实验室", "研究所", "频道", "TV", "Official", "_", ""]
ASCII_NAMES = ["Mr_Chen", "TechLab", "DataCat", "Nova", "PixelFox", "Kevin说科技", "Luna", "MathBoy", "Neo"]


def make_title(rng: random.Random, tid: int, style: TitleStyle) -> str:
    """A title for a video in ``tid`` with exactly the hook word, number and emoji that ``style`` asks for."""
    topics = TOPICS[tid]
    topic = rng.choice(topics)
    other = rng.choice([t for t in topics if t != topic] or topics)
    template = rng.choice(TEMPLATES_NUMBER if style.number else TEMPLATES_PLAIN)
    title = template.format(topic=topic, other=other, n=rng.choice([3, 5, 7, 10, 12, 30, 100]))
    if style.hook:
        title = rng.choice(HOOKS) + title
    if rng.random() < 0.12:  # a tag says nothing about views
        title += f" | {rng.choice(TAGS)}"
    if style.emoji:
        title = rng.choice(EMOJI) + title if rng.random() < 0.5 else title + rng.choice(EMOJI)
    return title[:80]


def make_name(rng: random.Random, taken: set[str]) -> str:
    """A unique uploader name, mostly Chinese, sometimes ASCII."""
    while True:
        if rng.random() < 0.15:
            name = rng.choice(ASCII_NAMES) + str(rng.randint(1, 999))
        else:
            name = rng.choice(NAME_PARTS_A) + rng.choice(NAME_PARTS_B) + rng.choice(NAME_PARTS_C)
        if name in taken:
            name += str(rng.randint(2, 99))
        if name not in taken:
            taken.add(name)
            return name
