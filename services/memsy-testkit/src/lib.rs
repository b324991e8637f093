//! Test support for every memsy crate: starts a real `nats-server` with
//! JetStream and a real `redis-server`, each on a free port with its own
//! temporary directory, and stops them when dropped. Tests stay independent
//! and can run in parallel; nothing here mocks our infrastructure.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// `env` if set, else the workspace's `.venv/bin/<name>` (where
/// `scripts/setup.sh` installs a current nats-server), else `PATH`, else
/// `fallbacks`.
fn find_binary(name: &str, env: &str, fallbacks: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin").join(name);
    if venv.is_file() {
        return venv;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    for f in fallbacks {
        if std::path::Path::new(f).is_file() {
            return PathBuf::from(f);
        }
    }
    panic!("{name} not found: install it (see README) or set {env}");
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on port {port} within 20 s");
}

/// A `nats-server -js` of our own.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> Self {
        let bin = find_binary(
            "nats-server",
            "MEMSY_TEST_NATS_SERVER",
            &["/usr/sbin/nats-server", "/usr/local/bin/nats-server"],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        wait_for_port(port, &mut child, "nats-server");
        Self { child, port, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (for tests of what happens when the broker is gone).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` of our own that keeps nothing on disk.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        let bin = find_binary(
            "redis-server",
            "MEMSY_TEST_REDIS_SERVER",
            &["/usr/bin/redis-server", "/usr/local/bin/redis-server"],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        wait_for_port(port, &mut child, "redis-server");
        Self { child, port, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace root (two levels above any crate under `services/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The all-MiniLM-L6-v2 model directory, failing loudly when it is missing.
pub fn model_dir() -> PathBuf {
    let dir = std::env::var("MEMSY__EMBEDDER__MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("models/all-minilm-l6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "model not found in {}: run scripts/fetch-model.sh",
        dir.display()
    );
    dir
}

/// An active, actor-level, session-less memory of `actor` in `org` with
/// `text`, written at `at`: the record store tests and benchmarks start from.
pub fn sample_memory(org: &str, actor: &str, text: &str, at: &str) -> memsy_core::model::Memory {
    memsy_core::model::Memory {
        memory_id: uuid::Uuid::new_v4().to_string(),
        org_id: org.into(),
        scope_level: "actor".into(),
        actor_id: Some(actor.into()),
        role_id: None,
        team_id: None,
        session_id: None,
        memory_type: "fact".into(),
        memory_kind: "semantic".into(),
        status: "active".into(),
        text: text.into(),
        title: "title".into(),
        summary: "summary".into(),
        tags: vec!["t1".into(), "t2".into()],
        entities: Vec::new(),
        confidence: 0.9,
        strength: 1.0,
        recall_count: 0,
        last_recalled_at: None,
        decay_half_life_days: 30.0,
        pinned: false,
        source_event_ids: vec![memsy_core::ids::new_event_id()],
        source_metadata: vec![serde_json::json!({"event_id": "e", "metadata": {"plan": "pro"}})],
        observed_at: at.into(),
        effective_from: None,
        effective_to: None,
        created_at: at.into(),
        slot: None,
        context: None,
        updated_at: at.into(),
    }
}

/// The name and the CPU ticks (utime + stime, in `USER_HZ`) of a Linux
/// `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat` line. The name may
/// hold spaces and parentheses, so the fields are counted after the last
/// `)`: state is the first of them, utime the 12th, stime the 13th.
pub fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::stat_ticks;

    #[test]
    fn stat_line_with_spaces_and_parens_in_the_name() {
        let line = "4242 (tokio rt (x)) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0";
        assert_eq!(stat_ticks(line), Some(("tokio rt (x)".to_string(), 281)));
        assert_eq!(stat_ticks("4242 (short) S 1 2"), None);
    }
}
