"""Word lists and templates for the titles and uploader names of the simulated world.

A title is written from its video's ``TitleStyle`` (bilipop.sim.popularity): a hook word, a number and an emoji
raise views, as the popularity model states; the topic, the template and the tag are noise.
"""

from __future__ import annotations

import random

from bilipop.sim.popularity import TitleStyle

# The old-scheme Knowledge sub-partitions are the crawler's own table (bilipop.crawl.api.KNOWLEDGE_TIDS).
# The newer (2025) scheme: Knowledge main 1010, sub-partitions 2084-2095; the mapping is deliberately loose.
TID_V2 = list(range(2084, 2096))
TID_V2_PRIMARY = {201: 2084, 124: 2086, 228: 2087, 207: 2088, 208: 2089, 209: 2090, 229: 2093, 122: 2085}

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
