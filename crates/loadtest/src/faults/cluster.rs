//! A private, throwaway PostgreSQL cluster (initdb in a temporary directory, on a free port) that the fault
//! suite may stop and restart while the server uses it. The machine's shared PostgreSQL is never touched.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use tokio::process::Command;

/// How a cluster is stopped.
#[derive(Debug, Clone, Copy)]
pub enum StopMode {
    /// Connections are ended cleanly and the data is written out (`pg_ctl -m fast`).
    Fast,
    /// Every process is killed; the next start runs crash recovery (`pg_ctl -m immediate`).
    Immediate,
}

impl StopMode {
    fn as_arg(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A running private cluster; stopped and deleted on drop.
pub struct PrivateCluster {
    root: PathBuf,
    bin: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// PostgreSQL refuses to run as root: as root, its programs run as the `postgres` user.
    as_root: bool,
}

impl PrivateCluster {
    /// Creates and starts a cluster with trust authentication on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()?;
        let root = std::env::temp_dir().join(format!("chat-faults-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let as_root = output(Command::new("id").arg("-u")).await?.trim() == "0";
        if as_root {
            output(Command::new("chown").arg("postgres:postgres").arg(&root)).await?;
        }
        let port = free_port()?;
        let cluster = Self { root, bin, port, as_root };
        let data = cluster.data_dir();
        output(cluster.program("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]))
        .await
        .context("initdb")?;
        cluster.start_server().await?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>` without TLS (loopback).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable", self.port)
    }

    /// Stops the server (its clients lose their connections).
    pub async fn stop(&self, mode: StopMode) -> anyhow::Result<()> {
        output(self.program("pg_ctl").arg("-D").arg(self.data_dir()).args(["-m", mode.as_arg(), "-w", "stop"]))
            .await
            .context("pg_ctl stop")?;
        Ok(())
    }

    /// Starts the server again and waits until it accepts connections.
    pub async fn start_server(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            self.port,
            self.root.display()
        );
        output(
            self.program("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-o", &options, "-l"])
                .arg(self.root.join("log"))
                .args(["-t", "60", "-w", "start"]),
        )
        .await
        .context("pg_ctl start")?;
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn program(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let mut stop = if self.as_root {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(self.bin.join("pg_ctl"));
            command
        } else {
            std::process::Command::new(self.bin.join("pg_ctl"))
        };
        let _ = stop.arg("-D").arg(self.data_dir()).args(["-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The directory holding `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(found) = std::process::Command::new("pg_config").arg("--bindir").output()
        && found.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&found.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    candidates.sort();
    match candidates.into_iter().rev().find(|dir| dir.join("initdb").exists()) {
        Some(dir) => Ok(dir),
        None => bail!("PostgreSQL server programs (initdb, pg_ctl) are needed; scripts/test.sh installs them"),
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

async fn output(command: &mut Command) -> anyhow::Result<String> {
    let result = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .with_context(|| format!("{command:?} did not finish within 2 minutes"))?
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        result.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    Ok(String::from_utf8_lossy(&result.stdout).into_owned())
}
