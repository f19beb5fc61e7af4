//! A readable name for the device behind a `User-Agent` ("Firefox on Linux"), for the account
//! page and `latch sessions list`. A session keeps only which browser and which system, as
//! two bytes (indexes into the tables below), never the header: a record stays small, holds
//! no more than is shown, and a hostile header cannot put its own text on a page.
//!
//! The indexes are stored: entries are only ever added at the end of a table, never
//! reordered or removed. The order of the checks matters: Edge, Opera, Samsung Internet and
//! Vivaldi also say `Chrome/` and `Safari/`; Chrome says `Safari/`; Android says `Linux`;
//! iPhones say `like Mac OS X`. The first matching entry wins, so the check order is a
//! separate list.

/// Which browser and which system, each an index into its table plus one (0: unknown), not
/// both unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Device {
    browser: u8,
    system: u8,
}

/// Browser names, in stored order (index + 1 is the stored byte).
const BROWSER_NAMES: &[&str] = &[
    "Edge",
    "Opera",
    "Samsung Internet",
    "Vivaldi",
    "Firefox",
    "Headless Chrome",
    "Chromium",
    "Chrome",
    "Safari",
    "curl",
    "Wget",
    "Python",
    "Go",
    "OkHttp",
    "Node.js",
];

/// System names, in stored order.
const SYSTEM_NAMES: &[&str] = &[
    "iPhone", "iPad", "Android", "Windows", "ChromeOS", "macOS", "Linux", "FreeBSD",
];

impl Device {
    /// The device a `User-Agent` names; `None` when it names neither browser nor system (or
    /// is absent).
    pub fn from_user_agent(user_agent: Option<&str>) -> Option<Device> {
        let ua = user_agent?;
        let index = |name: Option<&str>, table: &[&str]| {
            name.and_then(|n| table.iter().position(|t| *t == n))
                .map_or(0, |i| i as u8 + 1)
        };
        let device = Device {
            browser: index(browser(ua), BROWSER_NAMES),
            system: index(system(ua), SYSTEM_NAMES),
        };
        (device.browser != 0 || device.system != 0).then_some(device)
    }

    /// The two stored bytes.
    pub fn to_bytes(self) -> [u8; 2] {
        [self.browser, self.system]
    }

    /// From the stored bytes; `None` for indexes this version does not know.
    pub fn from_bytes([browser, system]: [u8; 2]) -> Option<Device> {
        let known = |i: u8, table: &[&str]| usize::from(i) <= table.len();
        (known(browser, BROWSER_NAMES) && known(system, SYSTEM_NAMES) && (browser | system) != 0)
            .then_some(Device { browser, system })
    }

    /// "Browser on System", either half alone when the other is unknown.
    pub fn name(&self) -> String {
        let name = |i: u8, table: &[&'static str]| {
            i.checked_sub(1)
                .and_then(|i| table.get(usize::from(i)).copied())
        };
        match (
            name(self.browser, BROWSER_NAMES),
            name(self.system, SYSTEM_NAMES),
        ) {
            (Some(b), Some(s)) => format!("{b} on {s}"),
            (Some(b), None) => b.to_string(),
            (None, Some(s)) => format!("A browser on {s}"),
            (None, None) => "Unknown device".to_string(),
        }
    }
}

fn browser(ua: &str) -> Option<&'static str> {
    const BROWSERS: &[(&[&str], &str)] = &[
        (&["Edg/", "EdgA/", "EdgiOS/"], "Edge"),
        (&["OPR/", "Opera"], "Opera"),
        (&["SamsungBrowser/"], "Samsung Internet"),
        (&["Vivaldi/"], "Vivaldi"),
        (&["Firefox/", "FxiOS/"], "Firefox"),
        (&["HeadlessChrome/"], "Headless Chrome"),
        (&["Chromium/"], "Chromium"),
        (&["Chrome/", "CriOS/"], "Chrome"),
        (&["Version/"], "Safari"),
        (&["curl/"], "curl"),
        (&["Wget/"], "Wget"),
        (
            &[
                "python-requests/",
                "python-httpx/",
                "Python-urllib/",
                "aiohttp/",
            ],
            "Python",
        ),
        (&["Go-http-client/"], "Go"),
        (&["okhttp/"], "OkHttp"),
        (&["node-fetch", "undici", "axios/", "node"], "Node.js"),
    ];
    BROWSERS
        .iter()
        // `Version/` is Safari's only when it also says `Safari/`.
        .find(|(marks, name)| {
            marks.iter().any(|m| ua.contains(m)) && (*name != "Safari" || ua.contains("Safari/"))
        })
        .map(|(_, name)| *name)
}

fn system(ua: &str) -> Option<&'static str> {
    const SYSTEMS: &[(&str, &str)] = &[
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("Windows", "Windows"),
        ("CrOS", "ChromeOS"),
        ("Macintosh", "macOS"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
        ("FreeBSD", "FreeBSD"),
    ];
    SYSTEMS
        .iter()
        .find(|(mark, _)| ua.contains(mark))
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(user_agent: Option<&str>) -> Option<String> {
        Device::from_user_agent(user_agent).map(|d| d.name())
    }

    #[test]
    fn common_browsers_get_their_names() {
        for (ua, want) in [
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on Windows"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Safari on macOS"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari on iPhone"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "Chrome on iPhone"),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Linux"),
            ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "Samsung Internet on Android"),
            ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome on Android"),
            ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on ChromeOS"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/114.0.0.0", "Opera on Windows"),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36", "Headless Chrome on Linux"),
            ("curl/8.5.0", "curl"),
            ("python-requests/2.32.3", "Python"),
            ("Mozilla/5.0 (X11; Linux x86_64) Something/1.0", "A browser on Linux"),
        ] {
            assert_eq!(describe(Some(ua)).as_deref(), Some(want), "{ua}");
        }
    }

    /// Every name the checks give has its stored index.
    #[test]
    fn every_checked_name_is_in_the_stored_tables() {
        for ua in [
            "Edg/1",
            "OPR/1",
            "SamsungBrowser/1",
            "Vivaldi/1",
            "Firefox/1",
            "HeadlessChrome/1",
            "Chromium/1",
            "Chrome/1",
            "Version/1 Safari/1",
            "curl/1",
            "Wget/1",
            "python-requests/1",
            "Go-http-client/1",
            "okhttp/1",
            "node",
        ] {
            let name = browser(ua).unwrap();
            assert!(BROWSER_NAMES.contains(&name), "{name}");
        }
        for ua in [
            "iPhone",
            "iPad",
            "Android",
            "Windows",
            "CrOS",
            "Macintosh",
            "Linux",
            "FreeBSD",
        ] {
            let name = system(ua).unwrap();
            assert!(SYSTEM_NAMES.contains(&name), "{name}");
        }
    }

    #[test]
    fn a_device_is_two_bytes_that_read_back() {
        let d = Device::from_user_agent(Some(
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        ))
        .unwrap();
        assert_eq!(Device::from_bytes(d.to_bytes()), Some(d));
        assert_eq!(d.name(), "Firefox on Linux");
        // Bytes a later version may write, or both unknown: not a device here.
        assert_eq!(Device::from_bytes([BROWSER_NAMES.len() as u8 + 1, 0]), None);
        assert_eq!(Device::from_bytes([0, SYSTEM_NAMES.len() as u8 + 1]), None);
        assert_eq!(Device::from_bytes([0, 0]), None);
        assert_eq!(
            Device::from_bytes([0, 7]).unwrap().name(),
            "A browser on Linux"
        );
        assert_eq!(Device::from_bytes([10, 0]).unwrap().name(), "curl");
    }

    #[test]
    fn an_unknown_or_absent_agent_has_no_name_and_none_is_echoed() {
        assert_eq!(describe(None), None);
        assert_eq!(describe(Some("")), None);
        assert_eq!(describe(Some("<script>alert(1)</script>")), None);
        // A `Version/` without `Safari/` is not Safari.
        assert_eq!(describe(Some("SomeBot Version/2")), None);
    }
}
