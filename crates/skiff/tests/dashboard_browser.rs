//! The dashboard in a real browser: Debian's headless `chromium`, driven over WebDriver
//! (`chromium-driver`), against a real daemon with real functions on the Docker engine.
//! The tests check what a person would see: the functions appear, a new call appears
//! without a reload, a failed call shows its error and its log, a function's output shows
//! up as it is written, an instance's lines are kept, and a dead call is redriven from its
//! page. Screenshots of each page
//! are kept under `target/screenshots/` (CI keeps them as artefacts).
//!
//! Needs `chromium` and `chromedriver` (`apt-get install chromium chromium-driver`); with
//! `CI=true` a missing one fails the test.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use skiff_testing::{free_port, needs, poll, repo_root, Daemon};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Long enough for a page to be fetched and updated a few times over (it polls every 2 s).
const SEEN_WITHIN: Duration = Duration::from_secs(30);

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `chromedriver` on a port of its own, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        let up = poll(
            Duration::from_secs(20),
            Duration::from_millis(100),
            async || {
                reqwest::get(&status)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            },
        )
        .await;
        assert!(up.is_some(), "chromedriver did not answer within 20 s");
        Driver { child, url }
    }

    /// A headless browser session.
    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_string(),
            json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000",
                         "--hide-scrollbars"],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots go: `target/screenshots/`.
fn screenshots() -> PathBuf {
    let dir = repo_root().join("target").join("screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshots folder");
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("write a screenshot");
}

/// Waits until the page's text holds `text`; panics with the page's text otherwise.
async fn wait_for_text(browser: &Client, text: &str) {
    let mut last = String::new();
    let found = poll(SEEN_WITHIN, Duration::from_millis(250), async || {
        let body = browser.find(Locator::Css("body")).await.ok()?;
        last = body.text().await.ok()?;
        last.contains(text).then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "`{text}` never showed; the page reads:\n{last}"
    );
}

/// Waits until an element matches `css`.
async fn wait_for(browser: &Client, css: &str) {
    let found = poll(SEEN_WITHIN, Duration::from_millis(250), async || {
        browser.find(Locator::Css(css)).await.ok().map(|_| ())
    })
    .await;
    let source = browser.source().await.unwrap_or_default();
    assert!(
        found.is_some(),
        "nothing matched `{css}`; the page is:\n{source}"
    );
}

/// Marks the page in the browser's memory: the mark is still there as long as the page
/// was not reloaded.
async fn mark(browser: &Client) {
    browser
        .execute("window.skiffTestMark = 'same page'; return true;", vec![])
        .await
        .expect("run a script");
}

async fn still_marked(browser: &Client) -> bool {
    browser
        .execute("return window.skiffTestMark || null;", vec![])
        .await
        .expect("run a script")
        == json!("same page")
}

#[tokio::test]
async fn the_dashboard_shows_functions_calls_logs_and_redrives_in_a_browser() {
    if !needs(
        on_path("chromium") && on_path("chromedriver"),
        "chromium and chromedriver",
        "apt-get install chromium chromium-driver",
    ) {
        return;
    }
    let Some(daemon) = Daemon::start_if_ready(skiff_testing::skiff_bin!(), &[]).await else {
        return;
    };
    skiff_testing::ensure_images();
    daemon
        .deploy(
            "hello",
            json!({"image": "skiff/hello:latest", "memory": "64Mi",
            "env": {"GREETING": "hi"}, "secrets": {"API_TOKEN": "never-shown-1234"}}),
        )
        .await;
    daemon
        .deploy(
            "web",
            json!({"image": "skiff/echo-http:latest", "contract": "http",
            "readiness_path": "/ready", "memory": "64Mi"}),
        )
        .await;
    daemon
        .deploy(
            "broken",
            json!({"image": "skiff/testfn:latest", "env": {"MODE": "exit"},
            "retries": 0}),
        )
        .await;
    for name in ["Ann", "Bob", "Cy"] {
        let answer = daemon.call_json("hello", &json!({"name": name})).await;
        assert_eq!(answer.text(), format!("Hello {name}!\n"));
    }
    for _ in 0..3 {
        assert!(daemon.get("/fn/web/hi").await.status.is_success());
    }
    let failed = daemon.invoke("broken", "{}").await;
    assert_eq!(failed.status.as_u16(), 502);
    let failed = failed.call_id().expect("a call id");
    let dead = daemon.call_async("/fn/broken", "{}", None).await.json()["call_id"]
        .as_str()
        .expect("an async call id")
        .to_string();
    let first_death = daemon
        .wait_call(&dead, "dead", Duration::from_secs(60))
        .await;

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let url = |path: &str| format!("{}{path}", daemon.url);

    // Without a session, a page leads to the login form; the admin token signs in.
    browser.goto(&url("/")).await.expect("open /");
    wait_for(&browser, "input[name='token']").await;
    browser
        .find(Locator::Css("input[name='token']"))
        .await
        .expect("the token field")
        .send_keys(&daemon.token)
        .await
        .expect("type the token");
    browser
        .find(Locator::Css("form button[type='submit']"))
        .await
        .expect("the sign-in button")
        .click()
        .await
        .expect("sign in");

    // The overview lists every function, with its contract and its calls.
    browser.goto(&url("/")).await.expect("open /");
    for name in ["hello", "web", "broken"] {
        wait_for(&browser, &format!("a[href='/functions/{name}']")).await;
    }
    wait_for_text(&browser, "http").await;
    screenshot(&browser, "overview").await;

    // A function's page: its configuration (no secret value), instances, charts.
    browser
        .goto(&url("/functions/web?window=15m"))
        .await
        .expect("open a function");
    wait_for(&browser, "#charts svg").await;
    wait_for_text(&browser, "ready").await;
    screenshot(&browser, "function").await;
    // An instance's page: what it wrote, kept line by line.
    browser
        .find(Locator::Css(
            "#instances a[href^='/functions/web/instances/']",
        ))
        .await
        .expect("a link to the instance's lines")
        .click()
        .await
        .expect("open the instance");
    wait_for_text(&browser, "echo-http: listening").await;
    screenshot(&browser, "instance").await;
    browser
        .goto(&url("/functions/hello?window=15m"))
        .await
        .expect("open a function");
    wait_for_text(&browser, "API_TOKEN").await;
    let page = browser.source().await.expect("the page");
    assert!(
        !page.contains("never-shown-1234"),
        "a secret's value is shown"
    );

    // Its output shows up as it is written, and a new call appears, without a reload.
    mark(&browser).await;
    // The page follows the function's log once its script has run.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answer = daemon.call_json("hello", &json!({"name": "Live"})).await;
    let live_call = answer.call_id().expect("a call id");
    wait_for_text(&browser, "greeting Live").await;
    wait_for(&browser, &format!("tr[data-call='{live_call}']")).await;
    assert!(still_marked(&browser).await, "the page was reloaded");
    screenshot(&browser, "function-live").await;

    // The calls explorer, filtered; a new call appears without a reload.
    browser
        .goto(&url("/calls?function=hello"))
        .await
        .expect("open the calls");
    wait_for(&browser, &format!("tr[data-call='{live_call}']")).await;
    mark(&browser).await;
    let newest = daemon
        .call_json("hello", &json!({"name": "Newest"}))
        .await
        .call_id()
        .expect("a call id");
    wait_for(&browser, &format!("tr[data-call='{newest}']")).await;
    assert!(still_marked(&browser).await, "the page was reloaded");
    let rows = browser
        .find_all(Locator::Css("tr[data-call]"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 5, "four calls of hello and the newest");
    screenshot(&browser, "calls").await;

    // A failed call shows its error and its log.
    browser
        .goto(&url(&format!("/calls/{failed}")))
        .await
        .expect("open a call");
    wait_for_text(&browser, "function_error").await;
    wait_for_text(&browser, "failing on purpose").await;
    let log = browser
        .find(Locator::Css("#call-log"))
        .await
        .expect("the call's log");
    assert!(log
        .text()
        .await
        .expect("text")
        .contains("failing on purpose"));
    screenshot(&browser, "call-failed").await;

    // A dead call is redriven from its page.
    browser
        .goto(&url(&format!("/calls/{dead}")))
        .await
        .expect("open a dead call");
    wait_for_text(&browser, "dead").await;
    screenshot(&browser, "call-dead").await;
    browser
        .find(Locator::Css("form.redrive button"))
        .await
        .expect("a redrive button")
        .click()
        .await
        .expect("click redrive");
    wait_for_text(&browser, "Queued again").await;
    let current = browser.current_url().await.expect("the url");
    assert!(current
        .as_str()
        .ends_with(&format!("/calls/{dead}?redriven=1")));
    // The daemon ran it again: a new round of attempts, which fails and ends dead again.
    let before = first_death["finished_at"].clone();
    let ran_again = poll(
        Duration::from_secs(60),
        Duration::from_millis(200),
        async || {
            let record = daemon.call_record(&dead).await;
            (record["status"] == "dead" && record["finished_at"] != before).then_some(record)
        },
    )
    .await;
    assert!(ran_again.is_some(), "the redriven call did not run again");

    // The overview on a phone's screen.
    browser
        .set_window_size(390, 844)
        .await
        .expect("a phone-sized window");
    browser.goto(&url("/")).await.expect("open /");
    wait_for(&browser, "a[href='/functions/hello']").await;
    screenshot(&browser, "overview-phone").await;

    // A tenant's read token of team-a signs in through the form and sees team-a alone.
    daemon
        .deploy("team-a.tenant", json!({"image": "skiff/hello:latest"}))
        .await;
    let created = skiff_testing::Answer::of(
        daemon
            .request(reqwest::Method::POST, "/v1/tokens")
            .json(&json!({"name": "tenant", "scopes": ["read"], "namespaces": ["team-a"]})),
    )
    .await;
    assert!(created.status.is_success(), "{}", created.text());
    let tenant = created.json()["secret"]
        .as_str()
        .expect("the token's secret")
        .to_string();
    browser
        .set_window_size(1280, 1000)
        .await
        .expect("a laptop-sized window");
    browser
        .delete_all_cookies()
        .await
        .expect("forget the session");
    browser.goto(&url("/login")).await.expect("open /login");
    wait_for(&browser, "input[name='token']").await;
    browser
        .find(Locator::Css("input[name='token']"))
        .await
        .expect("the token field")
        .send_keys(&tenant)
        .await
        .expect("type the token");
    browser
        .find(Locator::Css("form button[type='submit']"))
        .await
        .expect("the sign-in button")
        .click()
        .await
        .expect("sign in");
    wait_for(&browser, "a[href='/functions/team-a.tenant']").await;
    let page = browser.source().await.expect("the page");
    for other in ["/functions/hello", "/functions/web", "/functions/broken"] {
        assert!(!page.contains(other), "{other} shown to team-a: {page}");
    }
    screenshot(&browser, "overview-tenant").await;
    browser
        .goto(&url("/functions/hello"))
        .await
        .expect("open another namespace's function");
    wait_for_text(&browser, "Not found").await;

    browser.close().await.expect("close the browser");
    daemon.stop().await;
}
