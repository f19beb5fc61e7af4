//! What latch knows of a Sentinel-managed group: the connection to its master and the
//! Sentinels' last view (master and live replicas), and asking them for it.

use super::*;

pub(super) struct Sentinel {
    pub(super) state: Mutex<SentinelState>,
    /// The Sentinels' addresses and the group name, to ask them for their view.
    pub(super) sentinels: Vec<(String, u16)>,
    pub(super) service: String,
    /// One caller at a time asks the Sentinels for their view; the others use the last one,
    /// or wait for this answer when there is none to use.
    pub(super) asking: Mutex<()>,
    pub(super) view: std::sync::Mutex<SentinelView>,
    /// The node `state.conn` reaches, for the session cache.
    pub(super) route: std::sync::Arc<Route>,
}

/// Which node a Sentinel store's connection reaches, and a count of the connections made:
/// the session cache keeps a record read from the store only if the same connection, to
/// the node its feed is on, was current before and after the read (`store::cache`).
#[derive(Default)]
pub struct Route(std::sync::Mutex<(u64, Option<(String, u16)>)>);

impl Route {
    /// A new connection to `master`.
    pub(super) fn moved(&self, master: Option<(String, u16)>) {
        let mut r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *r = (r.0 + 1, master);
    }

    /// The current connection's number if it reaches `node`.
    pub(super) fn reaches(&self, node: &(String, u16)) -> Option<u64> {
        let r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (r.1.as_ref() == Some(node)).then_some(r.0)
    }
}

/// What the Sentinels said when last asked.
#[derive(Default)]
pub(super) struct SentinelView {
    /// The master they named and how many live replicas it has: a connection to any other
    /// node is dropped, and writes must reach that many replicas. `None` until one answers.
    pub(super) named: Option<((String, u16), u64)>,
    /// When they were last asked; `None` after a write no replica confirmed, so the next
    /// write waits for a fresh answer instead of trusting the old one.
    pub(super) asked: Option<Instant>,
}

impl Sentinel {
    pub(super) fn view(&self) -> std::sync::MutexGuard<'_, SentinelView> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn named_master(&self) -> Option<(String, u16)> {
        self.view().named.as_ref().map(|(m, _)| m.clone())
    }

    /// Does `master` match what the Sentinels last named (or have they not answered yet)?
    pub(super) fn agrees(&self, master: &Option<(String, u16)>) -> bool {
        match &self.view().named {
            Some((named, _)) => master.as_ref() == Some(named),
            None => true,
        }
    }
}

pub(super) struct SentinelState {
    pub(super) client: SentinelClient,
    pub(super) conn: Option<MultiplexedConnection>,
    pub(super) failed: Option<(Instant, StoreError)>,
    /// The node `conn` is connected to.
    pub(super) master: Option<(String, u16)>,
}

/// How long one Sentinel may take to answer for the view. They are asked all at once, so a
/// Sentinel that is down (or its host gone) costs this much, not a connect timeout each.
pub(super) const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// Sends `query` to every Sentinel at once, the one at `sentinels[i]` over `conns[i]`
/// (connected first when `None`), each within [`ASK_TIMEOUT`]: the answers that came, in
/// the order they came. A kept connection whose ask fails is replaced by a fresh one, once,
/// within the same [`ASK_TIMEOUT`]: a Sentinel that restarted (the old connection closed,
/// or reset when written to after a reboot) still has its say. A Sentinel that failed or
/// was late is left `None` in `conns`, to be connected again next time.
pub(super) async fn ask_each<T>(
    sentinels: &[(String, u16)],
    conns: &mut [Option<MultiplexedConnection>],
    query: &Pipeline,
) -> Vec<T>
where
    T: redis::FromRedisValue + Send + 'static,
{
    let mut asks = tokio::task::JoinSet::new();
    for (i, (host, port)) in sentinels.iter().cloned().enumerate() {
        let (query, conn) = (query.clone(), conns[i].take());
        asks.spawn(async move {
            let ask = async {
                if let Some(mut kept) = conn {
                    if let Ok(answer) = query.query_async::<T>(&mut kept).await {
                        return Ok((kept, answer));
                    }
                }
                let mut conn = redis::Client::open((host, port))?
                    .get_multiplexed_async_connection_with_config(&conn_config())
                    .await?;
                let answer: T = query.query_async(&mut conn).await?;
                Ok::<_, RedisError>((conn, answer))
            };
            match tokio::time::timeout(ASK_TIMEOUT, ask).await {
                Ok(Ok((conn, answer))) => (i, Some(conn), Some(answer)),
                _ => (i, None, None),
            }
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = asks.join_next().await {
        let Ok((i, conn, answer)) = joined else {
            continue;
        };
        conns[i] = conn;
        answers.extend(answer);
    }
    answers
}

/// The master of the group as named by the answering Sentinel with the highest
/// `config-epoch` (the latest failover wins over a Sentinel that has not heard of it), and
/// the number of its replicas that Sentinel does not see as down or disconnected; `None` if
/// no Sentinel answers within [`ASK_TIMEOUT`]. All Sentinels are asked at once, each on a
/// connection of its own made for this ask.
pub(super) async fn ask_sentinels(s: &Sentinel) -> Option<((String, u16), u64)> {
    type Map = std::collections::HashMap<String, String>;
    let mut view = redis::pipe();
    view.cmd("SENTINEL")
        .arg("MASTER")
        .arg(&s.service)
        .cmd("SENTINEL")
        .arg("REPLICAS")
        .arg(&s.service);
    let mut conns = vec![None; s.sentinels.len()];
    let answers: Vec<(Map, Vec<Map>)> = ask_each(&s.sentinels, &mut conns, &view).await;
    let mut best: Option<(u64, (String, u16), u64)> = None;
    for (master, replicas) in answers {
        let (Some(ip), Some(Ok(mport))) = (
            master.get("ip").cloned(),
            master.get("port").map(|p| p.parse::<u16>()),
        ) else {
            continue;
        };
        let epoch = master
            .get("config-epoch")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        let live = replicas
            .iter()
            .filter(|r| {
                let flags = r.get("flags").map(String::as_str).unwrap_or("");
                !flags
                    .split(',')
                    .any(|f| matches!(f, "s_down" | "o_down" | "disconnected"))
            })
            .count() as u64;
        if best.as_ref().is_none_or(|(e, _, _)| epoch > *e) {
            best = Some((epoch, (ip, mport), live));
        }
    }
    best.map(|(_, master, live)| (master, live))
}
