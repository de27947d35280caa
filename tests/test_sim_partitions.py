"""bilipop.sim.partitions: the v2 Knowledge names match the recorded table."""

from __future__ import annotations

from bilipop.crawl.api import KNOWLEDGE_V2
from bilipop.sim.partitions import V2_NAMES


def test_v2_names_match_the_recorded_table():
    # docs/reference.md, "Partitions", as recorded.
    recorded = ("2084 应试教育, 2085 非应试语言学习, 2086 大学专业知识, 2087 商业财经, 2088 社会观察, 2089 时政解读, "
                "2090 人文历史, 2091 设计艺术, 2092 心理杂谈, 2093 职场发展, 2094 科学科普, 2095 其他知识杂谈")
    table = dict(item.split(" ") for item in recorded.split(", "))
    assert {str(k): v for k, v in KNOWLEDGE_V2.items()} == table
    assert all(V2_NAMES[int(k)] == v for k, v in table.items()) and V2_NAMES[2094] == "科学科普"
