//! A Slurm cluster of one node on 127.0.0.1, started from built store paths: munged with a key
//! of its own, slurmctld and slurmd with a configuration written for the test, stopped when
//! dropped. Also the helpers the real-build tests share (store paths from a plan, RUNPATHs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, text};

/// The planned store path of package `name` in a `forge plan --json` document (the first node
/// of that name).
pub fn store_path(plan: &serde_json::Value, name: &str) -> PathBuf {
    node_path(plan, |n| n["name"] == name).unwrap_or_else(|| panic!("{name} in the plan"))
}

/// The store path of the first node of a `forge plan --json` document that `pick` accepts.
pub fn node_path(
    plan: &serde_json::Value,
    pick: impl Fn(&serde_json::Value) -> bool,
) -> Option<PathBuf> {
    plan["nodes"]
        .as_array()?
        .iter()
        .find(|n| pick(n))
        .map(|n| PathBuf::from(n["store_path"].as_str().unwrap()))
}

/// How many compiles and links the wrapper recorded for a built store path (`forge log
/// --wrapper`, run by `forge`), asserting that each got the x86-64-v3 flags.
pub fn compiled_for_v3(mut forge: Command, path: &Path) -> usize {
    let o = forge.args(["log", "--wrapper"]).arg(path).output().unwrap();
    let mut n = 0;
    for line in text(&o.stdout).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        if r["mode"] == "compile" || r["mode"] == "link" {
            n += 1;
            assert!(
                r["added"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f == "-march=x86-64-v3"),
                "{} compiled without the target flags: {r}",
                path.display()
            );
        }
    }
    n
}

/// Polls `f` every 200 ms until it holds, for at most `secs` seconds.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Processes stopped (SIGTERM, then SIGKILL after 10 s) when dropped.
pub struct Daemons(pub Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        for c in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running cluster of one node.
pub struct Cluster {
    /// The daemons (stopped on drop).
    pub daemons: Daemons,
    /// Its state directory (logs, spool, keys).
    pub state: PathBuf,
    /// `slurm.conf`.
    pub conf: PathBuf,
    /// The node's name (`hostname -s`).
    pub host: String,
    slurm: PathBuf,
}

impl Cluster {
    /// Starts munged (from `munge`) and slurmctld and slurmd (from `slurm`) under `state`,
    /// with `extra` appended to `slurm.conf`, and waits until munge answers. The node may still
    /// be coming up: see [`Cluster::wait_idle`].
    pub fn start(state: &Path, slurm: &Path, munge: &Path, extra: &str) -> Cluster {
        fs_err::create_dir_all(state.join("ctld")).unwrap();
        fs_err::create_dir_all(state.join("d")).unwrap();
        let key = state.join("munge.key");
        {
            use std::io::Read;
            use std::os::unix::fs::PermissionsExt;
            let mut k = vec![0u8; 1024];
            fs_err::File::open("/dev/urandom")
                .unwrap()
                .read_exact(&mut k)
                .unwrap();
            fs_err::write(&key, &k).unwrap();
            fs_err::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
        let socket = state.join("munge.socket");
        let mut daemons = Daemons(Vec::new());
        daemons.0.push(
            Command::new(munge.join("sbin/munged"))
                .arg("--foreground")
                .arg("--force")
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--pid-file={}", state.join("munged.pid").display()))
                .arg(format!("--log-file={}", state.join("munged.log").display()))
                .arg(format!(
                    "--seed-file={}",
                    state.join("munged.seed").display()
                ))
                .env_clear()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_until("munged's socket", 30, || socket.exists());
        let cred = Command::new(munge.join("bin/munge"))
            .args(["-n", "-S"])
            .arg(&socket)
            .env_clear()
            .output()
            .unwrap();
        assert!(cred.status.success(), "munge: {}", text(&cred.stderr));
        let host = text(&Command::new("hostname").arg("-s").output().unwrap().stdout)
            .trim()
            .to_owned();
        let conf = state.join("slurm.conf");
        let (ctld_port, d_port) = (free_port(), free_port());
        fs_err::write(
            &conf,
            format!(
                "ClusterName=forgetest\nSlurmctldHost=localhost(127.0.0.1)\nSlurmUser=root\nSlurmdUser=root\n\
                 AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={sock}\n\
                 SlurmctldPort={ctld_port}\nSlurmdPort={d_port}\nStateSaveLocation={s}/ctld\nSlurmdSpoolDir={s}/d\n\
                 SlurmctldPidFile={s}/slurmctld.pid\nSlurmdPidFile={s}/slurmd.pid\n\
                 SlurmctldLogFile={s}/slurmctld.log\nSlurmdLogFile={s}/slurmd.log\n\
                 ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n\
                 AccountingStorageType=accounting_storage/none\nSchedulerType=sched/backfill\n\
                 SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nMpiDefault=none\nReturnToService=2\n\
                 SlurmctldTimeout=30\nSlurmdTimeout=30\nInactiveLimit=0\nMinJobAge=30\nKillWait=5\nWaittime=0\n\
                 NodeName={host} NodeAddr=127.0.0.1 NodeHostname={host} CPUs=2 RealMemory=1000 State=UNKNOWN\n\
                 PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n{extra}",
                sock = socket.display(),
                s = state.display(),
            ),
        )
        .unwrap();
        for daemon in ["slurmctld", "slurmd"] {
            daemons.0.push(
                Command::new(slurm.join("sbin").join(daemon))
                    .arg("-D")
                    .arg("-f")
                    .arg(&conf)
                    .env_clear()
                    .env("SLURM_CONF", &conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
        }
        Cluster {
            daemons,
            state: state.to_path_buf(),
            conf,
            host,
            slurm: slurm.to_path_buf(),
        }
    }

    /// Runs a Slurm client with the cluster's configuration and, for jobs' commands, a PATH
    /// (srun passes its environment on to the tasks).
    pub fn client(&self, prog: &str, args: &[&str]) -> Output {
        Command::new(self.slurm.join("bin").join(prog))
            .args(args)
            .env_clear()
            .env("SLURM_CONF", &self.conf)
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    }

    /// Waits until the node is idle.
    pub fn wait_idle(&self) {
        wait_until("the node to become idle", 60, || {
            text(&self.client("sinfo", &["-h", "-o", "%T"]).stdout).trim() == "idle"
        });
    }

    /// slurmctld's log, for failure messages.
    pub fn ctld_log(&self) -> String {
        fs_err::read_to_string(self.state.join("slurmctld.log")).unwrap_or_default()
    }
}
