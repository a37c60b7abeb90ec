"""The Airloop page in a real browser: log in through Airflow's login page, open the page from the
navigation and from a DAG, and see the real run's champion and monitored window."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def _champion_and_charts(frame, served) -> None:
    """What both views show: the champion's version, and the charts' points of the real window."""
    champion = frame.locator("[data-testid=champion] [data-version]")
    champion.wait_for()
    assert champion.get_attribute("data-version") == served.version
    serving = frame.locator("[data-testid=serving]")
    assert f"{served.model_name} v{served.version}" in serving.inner_text()  # the endpoint answers with it
    drift = frame.locator(f'svg[data-chart="drift"] [data-window="{served.window.id}"]')
    assert 0 < float(drift.get_attribute("data-value")) <= 1
    labelled = frame.locator(
        f'svg[data-chart="performance"] g[data-series="labelled"] [data-window="{served.window.id}"]'
    )
    assert 0.5 < float(labelled.get_attribute("data-value")) <= 1
    assert served.quarantined in frame.locator("[data-testid=quarantine]").inner_text()


def test_the_airloop_page_in_the_navigation_shows_the_champion_and_the_window(page, served_model, screenshots):
    page.get_by_role("link", name="Airloop").first.click()
    page.wait_for_url("**/plugin/airloop**")
    frame = page.frame_locator('iframe[title="Airloop"]')

    _champion_and_charts(frame, served_model)

    shot = screenshots / "airloop-page.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    # A link to an Airflow run moves the Airflow UI itself (the iframe may not navigate the top page).
    frame.locator("[data-testid=champion] a", has_text="Airflow run").click()
    page.wait_for_url(f"**/dags/airloop_flights_training/runs/**{served_model.training_run_id[:20]}**")
    page.get_by_text(served_model.training_run_id).first.wait_for()


def test_each_airloop_dag_has_a_model_health_tab(page, served_model, screenshots):
    page.goto("/dags/airloop_flights_monitoring")
    page.get_by_text("Model health", exact=True).click()
    page.wait_for_url("**/dags/airloop_flights_monitoring/plugin/airloop-model-health")
    frame = page.frame_locator('iframe[title="Model health"]')

    frame.get_by_text("airloop_flights_monitoring is the monitoring DAG of pipeline").wait_for()
    _champion_and_charts(frame, served_model)

    shot = screenshots / "airloop-dag-view.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def test_a_dag_outside_airloop_says_it_has_no_model_health(page, stack_settings):
    page.goto("/airloop/dags/someone_elses_dag")
    assert page.get_by_role("heading", name="Not an Airloop DAG").is_visible()


def test_the_page_refuses_a_browser_that_is_not_logged_in(browser, stack, stack_settings):
    context = browser.new_context(base_url=stack_settings.airflow_url)
    try:
        response = context.new_page().goto("/airloop/")
        assert response is not None
        assert response.status == 401
    finally:
        context.close()
