"""The web demo (minisora/demo.py): launched on localhost, every task called through its API with gradio_client,
a bad input shown as the command line's error while the page keeps working, and the page itself driven in a real
headless Chromium: type a caption, press Generate, find a video that plays. Skipped without the `demo` extra (and,
for the browser, without Debian's chromium and chromium-driver), with the reason. The model is an untrained toy."""
import os
import shutil
import socket
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine in the tests
gradio = pytest.importorskip("gradio", reason='the demo extra is not installed: pip install -e ".[demo]"')
gradio_client = pytest.importorskip("gradio_client")

from minisora.data.video_io import read_video, write_image  # noqa: E402
from minisora.demo import build_demo  # noqa: E402
from minisora.pipeline import TinySora  # noqa: E402

PROMPT = "a large red square moving right slowly"
SETTINGS = dict(steps=2, guidance=4, seed=0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def page(untrained_toy, tmp_path_factory):
    """The demo of the untrained toy, running on 127.0.0.1 for the module's tests: its address."""
    model = TinySora.from_pretrained(untrained_toy / "model.pt", device="cpu")
    demo = build_demo(model, tmp_path_factory.mktemp("made"))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(page):
    return gradio_client.Client(page, verbose=False)


def video_path(result) -> Path:
    """A video output as gradio_client gives it back (a path, or {"video": path, ...})."""
    return Path(result["video"] if isinstance(result, dict) else result)


def test_every_task_answers_through_the_api(client, untrained_toy):
    first, clip = gradio_client.handle_file(str(untrained_toy / "first.png")), str(untrained_toy / "clip.mp4")
    uploaded = gradio_client.handle_file(clip)
    calls = {
        "/text_to_video": (PROMPT, 0, 0, 0, *SETTINGS.values()),
        "/image_to_video": (first, PROMPT, 0, *SETTINGS.values()),
        "/extend": (uploaded, PROMPT, False, 0, *SETTINGS.values()),
        "/interpolate": (first, first, PROMPT, *SETTINGS.values()),
        "/loop": (PROMPT, *SETTINGS.values()),
        "/edit": (uploaded, PROMPT, 0.5, *SETTINGS.values()),
    }
    frames = {}
    for name, arguments in calls.items():
        video, score = client.predict(*arguments, api_name=name)
        frames[name] = read_video(video_path(video)).shape[1]
        assert "scored against the world" in score, (name, score)
    # the model's 8 frames; an extension is the clip and half a window more; a loop leaves out its last frame
    assert frames == {"/text_to_video": 8, "/image_to_video": 8, "/extend": 12, "/interpolate": 8, "/loop": 7,
                      "/edit": 8}
    world = client.predict(api_name="/world_frame")
    assert Path(world).is_file()


def test_bad_input_shows_the_commands_error_and_the_page_keeps_working(client, tmp_path):
    import torch

    odd = write_image(tmp_path / "odd.png", torch.zeros(3, 1, 30, 30))  # 30 does not divide by the patch of 8
    with pytest.raises(Exception, match="30"):
        client.predict(gradio_client.handle_file(str(odd)), PROMPT, 0, *SETTINGS.values(), api_name="/image_to_video")
    video, score = client.predict(PROMPT, 0, 0, 0, *SETTINGS.values(), api_name="/text_to_video")
    assert video_path(video).is_file()


def chromium_driver():
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no Debian chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)


def pressed(button) -> bool:
    """Click the button as a user does; False while another element (the page still laying out) is over it."""
    from selenium.common.exceptions import ElementClickInterceptedException

    try:
        button.click()
        return True
    except ElementClickInterceptedException:
        return False


def test_in_a_real_browser_a_caption_and_generate_give_a_video_that_plays(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chromium_driver()
    try:
        browser.set_page_load_timeout(60)
        browser.get(page)
        wait = WebDriverWait(browser, 120)
        caption = wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "#caption textarea")))
        caption.clear()
        caption.send_keys("a small blue circle moving up quickly")
        # the page may still be laying itself out: press the button once nothing covers it
        wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "#generate")))
        wait.until(lambda _: pressed(browser.find_element(By.CSS_SELECTOR, "#generate")))
        video = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#text-video video[src]")))
        # the browser has read the file's header: it knows how long the video is, so it can play it
        wait.until(lambda _: browser.execute_script("return arguments[0].readyState >= 1 && arguments[0].duration > 0",
                                                    video))
        assert browser.execute_script("return arguments[0].duration", video) > 0
        score = browser.find_element(By.CSS_SELECTOR, "#text-score").text
        assert "against the world" in score
    finally:
        browser.quit()
