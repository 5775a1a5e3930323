//! A real reverse proxy in front of several server processes: HAProxy from the distribution's packages, started by
//! the harness with a generated configuration. Each request is balanced on its own (round robin), as the Databricks
//! Apps proxy does across instances; a request may name its replica with `x-replica: <index>` (scenarios spread one
//! turn's requests on purpose), which is ignored while that replica is down. Two entrances reach the same replicas:
//! one speaks HTTP/1.1 to them, the other HTTP/2 in cleartext (prior knowledge). Health checks take a stopped
//! replica out within a second, and a request that could not be sent to one is sent to another.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// The header that names a replica.
pub const REPLICA_HEADER: &str = "x-replica";

/// How the proxy speaks to the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 in cleartext, with prior knowledge (what Databricks Apps may send).
    H2c,
}

/// A running HAProxy; stopped on drop.
pub struct Proxy {
    child: Child,
    config: PathBuf,
    /// `http://127.0.0.1:<port>`: the entrance that speaks HTTP/1.1 to the replicas.
    pub http1_url: String,
    /// `http://127.0.0.1:<port>`: the entrance that speaks HTTP/2 cleartext to the replicas.
    pub h2c_url: String,
}

impl Proxy {
    /// Starts HAProxy in front of the replicas listening on `ports` (127.0.0.1), and waits until it accepts.
    pub fn start(ports: &[u16]) -> anyhow::Result<Self> {
        let binary = which("haproxy").context("HAProxy is needed for the replica bed (apt-get install haproxy)")?;
        let (http1_port, h2c_port) = (free_port()?, free_port()?);
        let config = std::env::temp_dir().join(format!("chat-replicas-{}.cfg", uuid::Uuid::new_v4().simple()));
        std::fs::write(&config, configuration(ports, http1_port, h2c_port))?;
        let check = Command::new(&binary).args(["-c", "-q", "-f"]).arg(&config).output()?;
        if !check.status.success() {
            bail!("HAProxy refused its configuration: {}", String::from_utf8_lossy(&check.stderr));
        }
        let child = Command::new(&binary)
            .args(["-db", "-q", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting HAProxy")?;
        let proxy = Self {
            child,
            config,
            http1_url: format!("http://127.0.0.1:{http1_port}"),
            h2c_url: format!("http://127.0.0.1:{h2c_port}"),
        };
        for port in [http1_port, h2c_port] {
            wait_for_port(port)?;
        }
        Ok(proxy)
    }

    /// The entrance for requests that go to the replicas over `upstream`.
    pub fn url(&self, upstream: Upstream) -> &str {
        match upstream {
            Upstream::Http1 => &self.http1_url,
            Upstream::H2c => &self.h2c_url,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// The configuration: two entrances, one backend each over the same replicas.
fn configuration(ports: &[u16], http1_port: u16, h2c_port: u16) -> String {
    let mut config = String::from(
        "global\n\
         \x20   maxconn 4096\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 10m\n\
         \x20   timeout server 10m\n\
         \x20   timeout http-keep-alive 1m\n\
         \x20   timeout check 1s\n\
         \x20   option http-keep-alive\n\
         \x20   # Streams are many small writes: send each at once, as a streaming proxy must.\n\
         \x20   option http-no-delay\n\
         \x20   retries 3\n\
         \x20   option redispatch 1\n\
         \x20   # Only requests that never reached a replica are sent again: a turn is not repeated by the proxy.\n\
         \x20   retry-on conn-failure\n\
         \x20   balance roundrobin\n\
         \x20   option httpchk GET /api/health\n\
         \x20   default-server check inter 250ms fall 2 rise 1\n",
    );
    for (name, port, upstream) in [("http1", http1_port, Upstream::Http1), ("h2c", h2c_port, Upstream::H2c)] {
        config.push_str(&format!("frontend {name}\n    bind 127.0.0.1:{port}\n    default_backend {name}_replicas\n"));
        config.push_str(&format!("backend {name}_replicas\n"));
        for (index, _) in ports.iter().enumerate() {
            config.push_str(&format!("    use-server r{index} if {{ req.hdr({REPLICA_HEADER}) -m str {index} }}\n"));
        }
        for (index, replica_port) in ports.iter().enumerate() {
            let proto = if upstream == Upstream::H2c { " proto h2" } else { "" };
            config.push_str(&format!("    server r{index} 127.0.0.1:{replica_port}{proto}\n"));
        }
    }
    config
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn wait_for_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("HAProxy did not listen on port {port} within 5 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_entrance_reaches_every_replica_and_the_h2c_one_speaks_http2() {
        let config = configuration(&[7001, 7002, 7003], 8001, 8002);
        assert!(config.contains("bind 127.0.0.1:8001\n    default_backend http1_replicas"));
        assert!(config.contains("server r2 127.0.0.1:7003\n"), "{config}");
        assert!(config.contains("server r2 127.0.0.1:7003 proto h2\n"), "{config}");
        assert!(config.contains("use-server r1 if { req.hdr(x-replica) -m str 1 }"), "{config}");
        assert!(!config.contains("retry-on all"), "turns must not be repeated by the proxy");
    }
}
