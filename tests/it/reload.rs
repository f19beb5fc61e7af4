//! `SIGHUP` reloads `providers.toml` (SPEC §5), driven on the real binary: a valid file
//! changes providers, rate limits and templates for new requests, while a session and a
//! flow started before the reload carry on; a file with a mistake is reported with
//! file:line:key and the running configuration stays.
use crate::support::browser::{location, Browser};
use crate::support::dev::{approve, dev_get_flow};
use crate::support::latch_bin::LatchProcess;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

fn config(providers: &str, limits: &str) -> String {
    format!("\n[store]\nurl = \"memory://\"\n\n[limits]\n{limits}\n\n{providers}")
}

const ONE: &str = "[providers.dev]\npreset = \"dev\"\nname = \"First\"\n";
const TWO: &str = "[providers.dev]\npreset = \"dev\"\nname = \"First\"\n\n[providers.other]\npreset = \"dev\"\nname = \"Second\"\n";

async fn provider_ids(process: &LatchProcess) -> Vec<String> {
    let v: Value = reqwest::get(process.url("/providers"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    ids.sort();
    ids
}

/// Waits (bounded) until latch has logged `needle` `count` times.
async fn logged(process: &LatchProcess, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while process.log().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "latch never logged {needle:?}:\n{}",
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sighup_reloads_a_valid_file_and_keeps_the_running_one_for_a_bad_file() {
    let mut process = LatchProcess::start(|_| config(ONE, "signin = \"100/min\"")).await;
    assert_eq!(provider_ids(&process).await, ["dev"]);

    // Before the reload: one browser signed in, another in the middle of a flow.
    let signed_in = Browser::new();
    let done = dev_get_flow(&process, &signed_in, "/signin/dev", "ada@example.com").await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let session = signed_in.json(&process.url("/session")).await;
    assert_eq!(session["user"]["email"], "ada@example.com");
    let pending = Browser::new();
    let start = pending
        .get(&process.url("/signin/dev?callbackUrl=/after"))
        .await;
    let authorize = location(&start, StatusCode::FOUND);

    // A second provider and a tight sign-in rate.
    process.rewrite_config(&config(TWO, "signin = \"1/min\""));
    process.signal("HUP");
    logged(&process, "configuration reloaded", 1).await;
    assert_eq!(provider_ids(&process).await, ["dev", "other"]);
    let page = reqwest::get(process.url("/signin")).await.unwrap();
    assert!(page.text().await.unwrap().contains("Second"));

    // The flow started before the reload completes, and the session is still good.
    let callback = approve(&pending, &authorize, "bob@example.com").await;
    let done = pending.get(&callback).await;
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/after", process.origin)
    );
    let session = signed_in.json(&process.url("/session")).await;
    assert_eq!(session["user"]["email"], "ada@example.com", "{session}");

    // The new rate applies: the first start passes, the second from this client is 429.
    let client = Browser::new();
    let first = client.get(&process.url("/signin/other")).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    let second = client.get(&process.url("/signin/other")).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);

    // A file with a mistake: reported with its line and key; nothing changes.
    process.rewrite_config(&format!(
        "{}\n[providers.third]\npreset = \"dev\"\nscopes = 7\n",
        config(TWO, "signin = \"100/min\"")
    ));
    process.signal("HUP");
    logged(&process, "reload refused", 1).await;
    let log = process.log();
    assert!(
        log.contains("providers.toml:") && log.contains("providers.third.scopes"),
        "{log}"
    );
    assert_eq!(provider_ids(&process).await, ["dev", "other"]);
    let again = client.get(&process.url("/signin/other")).await;
    assert_eq!(
        again.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the running limits stay"
    );
    assert!(process.running(), "latch survived both reloads");
    let log = process.stop().await;
    assert!(!log.contains("panicked"), "{log}");
}
