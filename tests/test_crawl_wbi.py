from bilipop.crawl import wbi

KEYS = ("7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45")


def test_mixin_key_known_answers():
    assert wbi.mixin_key(*KEYS) == "ea1db124af3c7062474693fa704f4ff8"
    assert (wbi.mixin_key("653657f524a547ac981ded72ea172057", "6e4909c702f846728e64f6007736a338")
            == "72136226c6a73669787ee4fd02a74c27")


def test_signature_known_answers():
    mixin = wbi.mixin_key(*KEYS)
    signed = wbi.sign({"foo": 114, "bar": 514, "zab": 1919810}, mixin, wts=1702204169)
    assert wbi.encode_query({k: v for k, v in signed.items() if k != "w_rid"}) == (
        "bar=514&foo=114&wts=1702204169&zab=1919810")
    assert signed["w_rid"] == "8f6f2b5b3d485fe1886cec6a0be8c5d4"
    assert wbi.sign({"aid": 2}, mixin, wts=1744823207)["w_rid"] == "a3cd246bd42c066932752b24694eaf0d"
    chinese = wbi.sign({"foo": 114, "bar": 514, "hello": "世 界"}, mixin, wts=1744823207)
    assert wbi.encode_query({k: v for k, v in chinese.items() if k != "w_rid"}) == (
        "bar=514&foo=114&hello=%E4%B8%96%20%E7%95%8C&wts=1744823207")
    assert chinese["w_rid"] == "93acf59d85f74453e40cea00056c3daf"


def test_verify_accepts_own_signature_and_rejects_tampering():
    mixin = wbi.mixin_key(*KEYS)
    signed = wbi.sign({"bvid": "BV1xx411c7mD", "q": "a(b)!"}, mixin, wts=1700000000)
    assert signed["q"] == "ab"
    assert wbi.verify(signed, mixin)
    assert not wbi.verify({**signed, "bvid": "BV1xx411c7mE"}, mixin)
    assert not wbi.verify({k: v for k, v in signed.items() if k != "w_rid"}, mixin)
    assert not wbi.verify(signed, wbi.mixin_key(*reversed(KEYS)))


def test_key_from_url():
    assert wbi.key_from_url("https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png") == KEYS[0]
