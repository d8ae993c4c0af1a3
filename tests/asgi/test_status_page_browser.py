"""The status page in a real browser: headless Chromium (Selenium) against a live app under
uvicorn. It sees a breaker open and the banner turn to the warning level without a reload,
and performs a reset with the operator token after being refused without it.

A screenshot of each state is written to ``test-artifacts/status-page/`` at the top of the
checkout (git-ignored). Needs the Debian packages ``chromium`` and ``chromium-driver``
(``.ci/run`` installs them) and ``selenium`` (the ``test`` extra); without them the test
is skipped, except when the environment variable ``CI`` is set, where it fails.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_servers import UvicornServer

import resilient
from resilient import BreakerConfig
from resilient._breaker.registry import CircuitBreakerRegistry
from resilient.asgi import status_app

pytestmark = pytest.mark.realtime

TOKEN = "a-long-operator-token-42"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "status-page"
WAIT = 10.0
"""Seconds any one expected change may take to show (the page polls every 0.5 s)."""


def _chromium() -> tuple[str, str]:
    """The browser and driver binaries; skipped (failed under CI) when missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [
        name for name, found in (("chromium", browser), ("chromedriver", driver)) if not found
    ]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if missing:
        needed = ", ".join(missing)
        reason = f"the browser test needs {needed} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set: {reason}")
        pytest.skip(reason)
    assert browser is not None
    assert driver is not None
    return browser, driver


def live_app() -> Any:
    """An app with an AI endpoint behind the ``ai_service`` breaker and the status page."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    @resilient.breaker("ai_service", BreakerConfig.ai_operation)
    async def generate() -> dict[str, str]:
        raise ConnectionError("the AI service is down")

    async def endpoint(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await generate())
        except (ConnectionError, resilient.CircuitOpenError) as error:
            return JSONResponse({"error": type(error).__name__}, status_code=503)

    return Starlette(
        routes=[
            Route("/ai/generate", endpoint, methods=["POST"]),
            Mount("/status", status_app(token=TOKEN, refresh=0.5, title="Aivo status")),
        ]
    )


@pytest.fixture
def browser() -> Iterator[Any]:
    binary, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1100,1500",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Callable[[Any], object], what: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT, poll_frequency=0.05).until(condition, f"waited for {what}")


def screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_the_page_follows_a_breaker_live_and_resets_it_with_the_token(browser: Any) -> None:
    """Open ``ai_service`` by failing calls: the banner turns to the warning level without
    a reload; a reset without the token is refused, with it the breaker closes."""
    from selenium.webdriver.common.by import By

    started = time.monotonic()
    driver = browser
    with UvicornServer(live_app()) as site:
        breaker = CircuitBreakerRegistry.instance.get("ai_service")
        driver.get(f"{site.url}/status/")
        level = lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-level")  # noqa: E731
        banner = lambda d: d.find_element(By.CSS_SELECTOR, "#live .banner")  # noqa: E731
        said = lambda d: d.find_element(By.ID, "op-result").text  # noqa: E731
        assert level(driver) == "none"
        assert "Full functionality" in banner(driver).text
        driver.execute_script("window.notReloaded = true;")
        screenshot(driver, "1-normal")

        with httpx.Client(base_url=site.url, timeout=5) as client:
            for _ in range(3):
                assert client.post("/ai/generate").status_code == 503
        assert breaker.opened
        wait_for(driver, lambda d: level(d) == "moderate", "the warning banner")
        shown = banner(driver)
        assert "banner-warning" in (shown.get_attribute("class") or "")
        assert "AI unavailable" in shown.text
        assert "UI impact: Warning banner" in shown.text
        assert driver.execute_script("return window.notReloaded === true;")
        assert "ai_service" not in driver.find_element(By.ID, "content").text  # public view
        screenshot(driver, "2-breaker-open")

        token = driver.find_element(By.ID, "op-token")
        token.send_keys(TOKEN)
        driver.find_element(By.ID, "op-who").send_keys("Selenium")
        driver.find_element(By.CSS_SELECTOR, "#unlock button[type=submit]").click()
        reset = (By.CSS_SELECTOR, 'button[data-action="reset"][data-target="ai_service"]')
        wait_for(driver, lambda d: d.find_elements(*reset), "the operator's detail")
        assert "Open" in driver.find_element(By.ID, "content").text
        screenshot(driver, "3-operator-detail")

        token.clear()
        driver.find_element(*reset).click()
        wait_for(driver, lambda d: "Refused (401)" in said(d), "the refusal")
        assert breaker.opened
        assert level(driver) == "moderate"
        screenshot(driver, "4-refused-without-token")

        token.send_keys(TOKEN)
        driver.find_element(*reset).click()
        wait_for(driver, lambda d: "now closed" in said(d), "the reset")
        assert not breaker.opened
        wait_for(driver, lambda d: level(d) == "none", "the normal banner")
        assert "Full functionality" in banner(driver).text
        assert driver.execute_script("return window.notReloaded === true;")
        screenshot(driver, "5-reset")

        driver.set_window_size(412, 915)  # a phone's width: rows become cards
        screenshot(driver, "6-phone")
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert len(errors) == 1
        assert "/status/actions" in errors[0]
        assert "401" in errors[0]
    assert time.monotonic() - started < 45


@pytest.mark.parametrize(
    ("ci", "outcome"), [("1", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_browser_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    """Without chromium the browser test is skipped, unless ``CI`` is set: then it fails."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="chromium, chromedriver"):
        _chromium()
