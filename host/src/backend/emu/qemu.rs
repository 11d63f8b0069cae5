//! The qemu process behind one emulated device.
//!
//! qemu runs `-machine virt` with `-cpu cortex-a72`, its guest RAM a shared file the host maps
//! too, and the firmware ELF as `-kernel`. Its standard output (the guest's serial console under
//! `-nographic`) and standard error are collected by reader threads, so an error can quote them.
//!
//! qemu never outlives the host: the child asks the kernel for `SIGKILL` when its parent dies
//! (`PR_SET_PDEATHSIG`), and dropping a [`Qemu`] kills and reaps it. The kernel sends that signal
//! when the *thread* that forked the child ends, so every qemu is spawned by one spawner thread
//! that lives as long as the host process.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

/// Environment variable naming the qemu binary to run (default `qemu-system-aarch64` on `PATH`).
pub const QEMU_ENV: &str = "PTO_QEMU";

/// Bytes of qemu's output kept for error messages (the latest ones).
const OUTPUT_KEEP: usize = 16 << 10;

/// How long an error message waits for the output of an exited qemu.
const OUTPUT_DRAIN: std::time::Duration = std::time::Duration::from_millis(500);

/// How one qemu is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuCommand {
    /// The qemu binary.
    pub binary: PathBuf,
    /// Emulated CPUs.
    pub vcpus: u32,
    /// Guest RAM bytes (the shared file's size; `-m` must equal it).
    pub ram_bytes: u64,
    /// The guest RAM file.
    pub mem_path: PathBuf,
    /// The firmware ELF.
    pub firmware: PathBuf,
}

impl QemuCommand {
    /// The qemu binary to use: `$PTO_QEMU`, else `qemu-system-aarch64`.
    pub fn default_binary() -> PathBuf {
        std::env::var_os(QEMU_ENV).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("qemu-system-aarch64"))
    }

    /// The command-line arguments.
    pub fn args(&self) -> Vec<String> {
        let mib = self.ram_bytes >> 20;
        vec![
            "-machine".into(),
            "virt,memory-backend=mem".into(),
            "-cpu".into(),
            "cortex-a72".into(),
            "-smp".into(),
            self.vcpus.to_string(),
            "-m".into(),
            format!("{mib}M"),
            "-nographic".into(),
            "-object".into(),
            format!("memory-backend-file,id=mem,size={mib}M,mem-path={},share=on", self.mem_path.display()),
            "-kernel".into(),
            self.firmware.display().to_string(),
        ]
    }

    /// The command line as one string, for messages.
    pub fn display(&self) -> String {
        std::iter::once(self.binary.display().to_string()).chain(self.args()).collect::<Vec<_>>().join(" ")
    }
}

/// The latest bytes of one output stream of qemu.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    dropped: u64,
    /// The stream reached its end (qemu closed it).
    closed: bool,
}

impl Tail {
    fn push(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
        if self.bytes.len() > OUTPUT_KEEP {
            let cut = self.bytes.len() - OUTPUT_KEEP;
            self.bytes.drain(..cut);
            self.dropped += cut as u64;
        }
    }

    fn text(&self) -> String {
        let s = String::from_utf8_lossy(&self.bytes);
        if self.dropped > 0 {
            format!("[{} earlier bytes not kept] {}", self.dropped, s.trim_end())
        } else {
            s.trim_end().to_owned()
        }
    }
}

/// A running (or exited) qemu.
pub struct Qemu {
    child: Mutex<Child>,
    pid: u32,
    stdout: Arc<Mutex<Tail>>,
    stderr: Arc<Mutex<Tail>>,
    readers: Vec<JoinHandle<()>>,
    command: String,
}

type SpawnRequest = (Command, Sender<std::io::Result<Child>>);

/// The spawner thread: forks every qemu, so `PR_SET_PDEATHSIG` fires only when the process ends.
fn spawner() -> &'static Mutex<Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("pto-emu-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the qemu spawner thread");
        Mutex::new(tx)
    })
}

fn reader(mut from: impl Read + Send + 'static, into: Arc<Mutex<Tail>>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("pto-emu-output".into()).spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    into.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
                    return;
                }
                Ok(n) => into.lock().unwrap_or_else(|e| e.into_inner()).push(&buf[..n]),
            }
        }
    })
}

impl Qemu {
    /// Starts qemu as `cmd` says.
    pub fn spawn(cmd: &QemuCommand) -> std::io::Result<Qemu> {
        let mut c = Command::new(&cmd.binary);
        c.args(cmd.args()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: getpid is async-signal-safe.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure runs in the forked child before exec and only calls the
        // async-signal-safe prctl, getppid and _exit.
        unsafe {
            c.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            })
        };
        let (tx, rx) = channel();
        spawner()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((c, tx))
            .map_err(|_| std::io::Error::other("the qemu spawner thread is gone"))?;
        let mut child = rx.recv().map_err(|_| std::io::Error::other("the qemu spawner thread is gone"))??;
        let pid = child.id();
        let stdout = Arc::new(Mutex::new(Tail::default()));
        let stderr = Arc::new(Mutex::new(Tail::default()));
        let mut readers = Vec::new();
        let mut qemu_readers = || -> std::io::Result<()> {
            if let Some(o) = child.stdout.take() {
                readers.push(reader(o, stdout.clone())?);
            }
            if let Some(e) = child.stderr.take() {
                readers.push(reader(e, stderr.clone())?);
            }
            Ok(())
        };
        if let Err(e) = qemu_readers() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Ok(Qemu { child: Mutex::new(child), pid, stdout, stderr, readers, command: cmd.display() })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The command line qemu was started with.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The exit status, once qemu exited (reaps it).
    pub fn exited(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).try_wait().ok().flatten()
    }

    /// What qemu wrote to standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).text()
    }

    /// What qemu wrote to standard output (the guest console) so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap_or_else(|e| e.into_inner()).text()
    }

    /// Waits for qemu to exit and returns its status.
    pub fn wait(&self) -> std::io::Result<ExitStatus> {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).wait()
    }

    /// Both output streams, for an error message: "stderr: …; console: …" (empty parts left out).
    /// Once qemu exited, waits a moment for the reader threads to reach the streams' ends, so the
    /// last words qemu wrote are in.
    pub fn output_summary(&self) -> String {
        if self.exited().is_some() {
            let t0 = std::time::Instant::now();
            let closed = |t: &Mutex<Tail>| t.lock().unwrap_or_else(|e| e.into_inner()).closed;
            while !(closed(&self.stdout) && closed(&self.stderr)) && t0.elapsed() < OUTPUT_DRAIN {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        let (err, out) = (self.stderr(), self.stdout());
        match (err.is_empty(), out.is_empty()) {
            (true, true) => "qemu printed nothing".into(),
            (false, true) => format!("qemu stderr: {err}"),
            (true, false) => format!("guest console: {out}"),
            (false, false) => format!("qemu stderr: {err}; guest console: {out}"),
        }
    }

    /// Kills qemu (if it still runs) and reaps it.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if child.try_wait().ok().flatten().is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

/// True when `binary` can be executed (an absolute or relative path that exists, or a name found
/// on `PATH`).
pub fn binary_available(binary: &Path) -> bool {
    if binary.components().count() > 1 {
        return binary.is_file();
    }
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(binary).is_file()))
}
