"""bilipop serve's page in a real headless Chromium driven by Selenium: upload two covers and two titles, see four
ranked cards, toggle the heatmap, read the winner.

Chromium and its driver come from the Debian packages (``apt-get install chromium chromium-driver``, which
``.ci/run`` does). Without them these tests are skipped on a developer's machine, but fail under CI (``CI`` set),
so that a missing browser cannot pass as a green run. ``BILIPOP_SCREENSHOT=path.png`` keeps the screenshot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[web]')")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from PIL import Image, ImageDraw  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from bilipop.serve.server import load_served_run, serving  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TITLES = ["三分钟看懂黑洞：为什么连光都逃不出来？", "<b>Black holes</b> in 3 minutes & why"]


def _browser_paths() -> tuple[str, str] | None:
    chrome = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver") or next((p for p in ("/usr/lib/chromium/chromedriver",) if Path(p).exists()),
                                                  None)
    return (chrome, driver) if chrome and driver else None


@pytest.fixture(scope="module")
def browser_paths():
    paths = _browser_paths()
    if paths is None:
        message = "Chromium and chromedriver are needed: apt-get install -y chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {message}")
        pytest.skip(message)
    return paths


def _driver(paths: tuple[str, str], language: str):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1900", f"--lang={language}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    driver = webdriver.Chrome(options=options, service=Service(paths[1]))
    driver.set_page_load_timeout(60)
    return driver


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    """The tiny run, evaluated (so that the page has figures to show), served on a free port."""
    from bilipop.evaluation.report import evaluate

    run = tmp_path_factory.mktemp("served") / "tiny"
    shutil.copytree(tiny_run["run"], run)
    evaluate(run, data=tiny_run["data"])
    with serving(load_served_run(run)) as url:
        yield url


@pytest.fixture(scope="module")
def cover_files(tmp_path_factory):
    """Two covers at a real cover's size (16:10), one warm and one cold, with shapes a viewer can tell apart."""
    folder = tmp_path_factory.mktemp("page_covers")
    paths = []
    for name, (top, bottom), shape in (("warm.png", ((250, 120, 60), (120, 20, 60)), "circle"),
                                       ("cold.jpg", ((30, 90, 200), (10, 200, 170)), "box")):
        img = Image.new("RGB", (640, 400))
        draw = ImageDraw.Draw(img)
        for y in range(400):
            t = y / 399
            draw.line([(0, y), (640, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
        if shape == "circle":
            draw.ellipse([380, 80, 600, 300], fill=(255, 230, 90))
        else:
            draw.rectangle([60, 220, 300, 360], fill=(245, 245, 245))
        path = folder / name
        img.save(path)
        paths.append(path)
    return paths


def _wait(driver, condition, timeout: float = 60):
    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def test_two_covers_two_titles_four_ranked_cards_heatmap_and_winner(browser_paths, server, cover_files, tmp_path):
    driver = _driver(browser_paths, "en-US")
    try:
        driver.get(server)
        _wait(driver, lambda d: d.find_element(By.ID, "model-name").text not in ("", "…"))
        assert driver.find_element(By.ID, "heading").text == "bilipop: compare covers and titles"
        assert "ordinal accuracy" in driver.find_element(By.ID, "model-accuracy").text
        assert "best constant" in driver.find_element(By.ID, "model-floors").text

        driver.find_element(By.ID, "cover-input").send_keys("\n".join(str(p) for p in cover_files))
        assert len(driver.find_elements(By.CSS_SELECTOR, "#cover-list li")) == 2
        inputs = driver.find_elements(By.CSS_SELECTOR, ".title-input")
        for box, title in zip(inputs, TITLES, strict=False):
            box.send_keys(title)
        driver.find_element(By.ID, "compare").click()
        _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .card")) == 4)

        # The page shows the API's ranking, in its order.
        files = [("cover", (p.name, p.read_bytes(), "image/png")) for p in cover_files]
        expected = httpx.post(f"{server}/api/rank", files=files, data={"title": TITLES}, timeout=60,
                              headers={"X-Bilipop": "1"}).json()
        cards = driver.find_elements(By.CSS_SELECTOR, "#results .card")
        shown = [(c.get_attribute("data-cover"), c.get_attribute("data-title")) for c in cards]
        assert shown == [(c["cover"], c["title"]) for c in expected["candidates"]]
        assert [c.get_attribute("data-rank") for c in cards] == ["1", "2", "3", "4"]
        for card, candidate in zip(cards, expected["candidates"], strict=True):
            assert f"expected class {candidate['expected_class']:.2f}" in card.text
            assert len(card.find_elements(By.CSS_SELECTOR, ".bar")) == 5
            assert len(card.find_elements(By.CSS_SELECTOR, ".feed-card img")) == 1
            assert len(card.find_elements(By.CSS_SELECTOR, ".full img")) == 1
        # A title is shown as text: its markup is neither parsed nor lost.
        assert not driver.find_elements(By.CSS_SELECTOR, "#results .feed-title b")
        assert any(TITLES[1] == t.text for t in driver.find_elements(By.CSS_SELECTOR, ".feed-title"))

        best = expected["candidates"][0]
        winner = driver.find_element(By.ID, "winner").text
        assert winner.startswith("Winner:") and best["cover"] in winner and best["title"] in winner

        driver.find_element(By.ID, "heatmap").click()
        _wait(driver, lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "explained", 120)
        for card in driver.find_elements(By.CSS_SELECTOR, "#results .card"):
            for img in card.find_elements(By.CSS_SELECTOR, "img"):
                assert img.get_attribute("src").startswith("data:image/png;base64,")
            assert "title tokens that mattered" in card.text
        assert driver.find_elements(By.CSS_SELECTOR, ".feed-title mark")

        shot = Path(os.environ.get("BILIPOP_SCREENSHOT") or tmp_path / "page.png")
        driver.save_screenshot(str(shot))
        with Image.open(shot) as image:
            assert image.size[0] >= 1000 and len(image.getcolors(1 << 24) or []) > 50  # a rendered page, not blank

        driver.find_element(By.ID, "heatmap").click()  # off again: the covers come back
        first = driver.find_element(By.CSS_SELECTOR, "#results .card .full img").get_attribute("src")
        assert first.startswith("blob:")
    finally:
        driver.quit()


def test_the_page_speaks_chinese_to_a_chinese_browser(browser_paths, server):
    driver = _driver(browser_paths, "zh-CN")
    try:
        driver.get(server)
        _wait(driver, lambda d: d.find_element(By.ID, "model-name").text not in ("", "…"))
        assert driver.find_element(By.ID, "heading").text == "bilipop：比较封面和标题"
        assert driver.find_element(By.ID, "compare").text == "比较"
        assert "有序准确率" in driver.find_element(By.ID, "model-accuracy").text
    finally:
        driver.quit()


def test_an_error_from_the_api_is_shown_on_the_page(browser_paths, server, tmp_path):
    driver = _driver(browser_paths, "en-US")
    try:
        driver.get(server)
        notes = tmp_path / "notes.png"
        notes.write_text("<script>alert(1)</script> not an image", encoding="utf-8")
        driver.find_element(By.ID, "cover-input").send_keys(str(notes))
        driver.find_element(By.CSS_SELECTOR, ".title-input").send_keys("标题")
        driver.find_element(By.ID, "compare").click()
        _wait(driver, lambda d: d.find_element(By.ID, "error").is_displayed())
        assert "not an image" in driver.find_element(By.ID, "error").text
        assert not driver.find_elements(By.CSS_SELECTOR, "#results .card")
    finally:
        driver.quit()


def test_beat_probabilities_and_intervals_are_shown_when_the_json_has_them(browser_paths, tiny_run, cover_files,
                                                                             tmp_path, monkeypatch):
    # The ranking and metrics fields that the trustworthy-results work adds (rank, p_beats_next, ci): the page
    # shows them when present, and (the test above) does without them.
    import json

    from bilipop.serve import app as web

    real = web.ranking_json

    def with_beats(candidates):
        result = real(candidates)
        for i, candidate in enumerate(result["candidates"]):
            candidate["rank"] = i + 1
            candidate["p_beats_next"] = None if i == len(result["candidates"]) - 1 else 0.55 + 0.1 * i
        return result

    monkeypatch.setattr(web, "ranking_json", with_beats)
    run = tmp_path / "tiny"
    shutil.copytree(tiny_run["run"], run, ignore=shutil.ignore_patterns("eval"))
    (run / "eval" / "test").mkdir(parents=True)
    metrics = {"split": "test", "n": 5, "ordinal_accuracy": 0.6, "ci": {"ordinal_accuracy": [0.3, 0.9]},
               "baselines": {"best_constant": {"ordinal_accuracy": 0.4, "ci": {"ordinal_accuracy": [0.2, 0.6]}}}}
    (run / "eval" / "test" / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    driver = _driver(browser_paths, "en-US")
    try:
        with serving(load_served_run(run)) as url:
            driver.get(url)
            _wait(driver, lambda d: "interval" in d.find_element(By.ID, "model-accuracy").text)
            assert "0.600 (95% interval 0.300–0.900)" in driver.find_element(By.ID, "model-accuracy").text
            assert "best constant 0.400 (0.200–0.600)" in driver.find_element(By.ID, "model-floors").text
            # The interval's low end is under the best constant: the page says not to trust the ranking.
            assert "does not beat the best constant" in driver.find_element(By.ID, "model-warning").text
            driver.find_element(By.ID, "cover-input").send_keys(str(cover_files[0]))
            driver.find_element(By.CSS_SELECTOR, ".title-input").send_keys(TITLES[0])
            driver.find_elements(By.CSS_SELECTOR, ".title-input")[1].send_keys(TITLES[1])
            driver.find_element(By.ID, "compare").click()
            _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .card")) == 2)
            cards = driver.find_elements(By.CSS_SELECTOR, "#results .card")
            assert "beats #2: 55.0%" in cards[0].text and "beats" not in cards[1].text
            assert "close call" in driver.find_element(By.ID, "winner").text
    finally:
        driver.quit()


DROP_FILES = """
const [count, done] = [arguments[0], arguments[arguments.length - 1]];
const canvas = document.createElement("canvas");
canvas.width = 64; canvas.height = 40;
const ctx = canvas.getContext("2d");
const transfer = new DataTransfer();
(async () => {
  for (let i = 0; i < count; i += 1) {
    ctx.fillStyle = `hsl(${i * 60}, 80%, 50%)`;
    ctx.fillRect(0, 0, 64, 40);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    transfer.items.add(new File([blob], `dropped-${i}.png`, { type: "image/png" }));
  }
  document.querySelector("#drop").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true,
                                                                         cancelable: true }));
  done();
})();
"""


def test_dropped_covers_are_taken_up_to_four(browser_paths, server):
    driver = _driver(browser_paths, "en-US")
    try:
        driver.get(server)
        driver.set_script_timeout(30)
        driver.execute_async_script(DROP_FILES, 5)
        names = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#cover-list li")]
        assert [n.split("\n")[0].strip("✕ ") for n in names] == [f"dropped-{i}.png" for i in range(4)]
        assert "At most 4 covers" in driver.find_element(By.ID, "error").text
        driver.find_element(By.CSS_SELECTOR, ".title-input").send_keys("拖进来的封面")
        driver.find_element(By.ID, "compare").click()
        _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .card")) == 4)
    finally:
        driver.quit()


def test_a_model_never_evaluated_says_so(browser_paths, tiny_run, tmp_path):
    run = tmp_path / "fresh"
    shutil.copytree(tiny_run["run"], run, ignore=shutil.ignore_patterns("eval"))
    driver = _driver(browser_paths, "en-US")
    try:
        with serving(load_served_run(run)) as url:
            driver.get(url)
            _wait(driver, lambda d: d.find_element(By.ID, "model-name").text == "fresh")
            assert "Not evaluated yet: run bilipop evaluate RUN" in driver.find_element(By.ID, "model-accuracy").text
            assert driver.find_element(By.ID, "model-floors").text == ""
    finally:
        driver.quit()


def test_answers_are_matched_to_uploads_by_position_even_with_quotes_in_file_names(browser_paths, server,
                                                                                    cover_files, tmp_path):
    # A browser sends " in a file name as %22, so the server's name for a file is not the page's: the page ties
    # each answer to its upload by position. Before, these cards lost their cover and their heatmap.
    names = ['warm "sun".png', 'cold "box".jpg', 'plain.png']
    paths = []
    for name, source in zip(names, [*cover_files, cover_files[0]], strict=True):
        paths.append(tmp_path / name)
        shutil.copyfile(source, paths[-1])
    driver = _driver(browser_paths, "en-US")
    try:
        driver.get(server)
        driver.find_element(By.ID, "cover-input").send_keys("\n".join(str(p) for p in paths))
        listed = {li.find_element(By.CSS_SELECTOR, "span").text: li.find_element(By.CSS_SELECTOR, "img")
                  .get_attribute("src") for li in driver.find_elements(By.CSS_SELECTOR, "#cover-list li")}
        assert sorted(listed) == sorted(names)
        inputs = driver.find_elements(By.CSS_SELECTOR, ".title-input")
        for box, title in zip(inputs, TITLES, strict=False):
            box.send_keys(title)
        driver.find_element(By.ID, "compare").click()
        _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .card")) == 6)
        cards = driver.find_elements(By.CSS_SELECTOR, "#results .card")
        assert sorted(c.get_attribute("data-cover") for c in cards) == sorted(names * 2)
        for card in cards:  # every card shows its own upload, under the file's own name
            sources = {img.get_attribute("src") for img in card.find_elements(By.CSS_SELECTOR, "img")}
            assert sources == {listed[card.get_attribute("data-cover")]}
            assert f"full size: {card.get_attribute('data-cover')}" in card.text.lower()
        driver.find_element(By.ID, "heatmap").click()
        _wait(driver, lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "explained", 180)
        for card in driver.find_elements(By.CSS_SELECTOR, "#results .card"):
            for img in card.find_elements(By.CSS_SELECTOR, "img"):
                assert img.get_attribute("src").startswith("data:image/png;base64,")
    finally:
        driver.quit()


def test_an_error_names_the_cover_by_number_and_file_name(browser_paths, server, tmp_path):
    notes = tmp_path / 'notes "draft".txt'
    notes.write_text("not a picture", encoding="utf-8")
    driver = _driver(browser_paths, "en-US")
    try:
        driver.get(server)
        driver.find_element(By.ID, "cover-input").send_keys(str(notes))
        driver.find_element(By.CSS_SELECTOR, ".title-input").send_keys(TITLES[0])
        driver.find_element(By.ID, "compare").click()
        _wait(driver, lambda d: d.find_element(By.ID, "error").text)
        assert 'cover 1 (notes "draft".txt) is not an image bilipop reads' in driver.find_element(By.ID, "error").text
    finally:
        driver.quit()
