//! The only place in sesamed that starts processes.
//!
//! Every system tool is named by an absolute path and started directly (no shell), with an empty
//! environment apart from a fixed `PATH` and `LC_ALL=C` (tools' messages are parsed), stdin closed,
//! output capped and a deadline after which the tool is killed: its own, or the request's when a
//! module's host call runs it and less of that is left ([`crate::deadline`]), or at once when that
//! request's client cancels it. Each tool runs in a process
//! group of its own, so a tool past its deadline is killed together with whatever it started
//! (salt-call's state commands, ufw's iptables). Arguments are passed as separate
//! strings that the callers have already parsed into newtypes, so nothing a client sends is ever
//! interpreted by a shell.
//!
//! Programs an operator declared for the `exec` capability start the same way ([`Tool::launch`]),
//! except that their declaration sets the account they run as, their whole environment, their
//! directory, their input and their output cap.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

/// Output kept per stream; the rest is read and dropped so the tool never blocks on a full pipe.
pub const MAX_TOOL_OUTPUT: usize = 1 << 20;
/// How long a tool may run unless the caller says otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// The environment every tool gets, and nothing else.
const TOOL_ENV: &[(&str, &str)] = &[("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), ("LC_ALL", "C")];

/// A system tool at an absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    path: PathBuf,
    deadline: Duration,
    recorder: Option<Recorder>,
}

/// Where dry runs write the command lines they would have run (`sesamed module run`): a tool
/// with a recorder never starts a process; it records its command line and reports success
/// with no output.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    /// Records one line.
    pub fn record(&self, line: String) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(line);
    }

    /// Everything recorded so far, oldest first, leaving the record empty.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl PartialEq for Recorder {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Recorder {}

/// What a tool printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output (lossy UTF-8, at most [`MAX_TOOL_OUTPUT`] bytes).
    pub stdout: String,
    /// Standard error (lossy UTF-8, at most [`MAX_TOOL_OUTPUT`] bytes).
    pub stderr: String,
}

/// How a program an operator declared (the `exec` capability) is started, beyond what every
/// tool gets: as an account, with its own environment, directory and input, and its own cap on
/// output. A launch with no account runs as the daemon's. Its `Debug` shows no environment
/// value and no input, where secrets travel.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Launch {
    /// Run as this user id: the group is set first and supplementary groups are cleared (std
    /// does both when a root parent sets an id), so nothing of root's is left.
    pub uid: Option<u32>,
    /// Run as this group id.
    pub gid: Option<u32>,
    /// The whole environment (in place of the tools' `PATH` and `LC_ALL`).
    pub env: Vec<(String, String)>,
    /// The working directory (default: the daemon's).
    pub cwd: Option<PathBuf>,
    /// Written to standard input, which is then closed (default: no input at all).
    pub stdin: Option<Vec<u8>>,
    /// Output kept per stream, bytes (the rest is read and dropped).
    pub max_output: usize,
    /// Also handed everything the program writes, as it is read (for a client that takes the
    /// output as it comes).
    pub tap: Option<OutputTap>,
}

/// Called with what a launched program writes, and to which of its pipes, as it is read and
/// before anything of it is dropped; on the thread that waits for the program.
#[derive(Clone)]
pub struct OutputTap(Arc<TapFn>);

/// What an [`OutputTap`] calls.
type TapFn = dyn Fn(Pipe, &[u8]) + Send + Sync;

/// A launched program's output pipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputTap {
    /// A tap calling `f`.
    pub fn new(f: impl Fn(Pipe, &[u8]) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Hands it `bytes` read from `pipe`.
    pub fn call(&self, pipe: Pipe, bytes: &[u8]) {
        (self.0)(pipe, bytes);
    }
}

/// Two are equal when they are the same tap.
impl PartialEq for OutputTap {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for OutputTap {}

impl std::fmt::Debug for OutputTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputTap")
    }
}

impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch")
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .field(
                "stdin",
                &self.stdin.as_ref().map(|s| format!("{} bytes", s.len())),
            )
            .field("max_output", &self.max_output)
            .field("tap", &self.tap.is_some())
            .finish()
    }
}

/// What a launched program printed, how it ended, and how long it took.
#[derive(Debug, Clone)]
pub struct Launched {
    /// Its output, as for any tool.
    pub output: Output,
    /// Output was dropped past [`Launch::max_output`].
    pub truncated: bool,
    /// Wall time from start to exit.
    pub elapsed: Duration,
}

/// Why a tool could not be run or did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The path is not absolute.
    #[error("{0}: system tools must be named by an absolute path")]
    NotAbsolute(PathBuf),
    /// The tool could not be started (missing, not executable).
    #[error("cannot run {path}: {source}")]
    Spawn {
        /// The tool.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The tool ran past its deadline and was killed.
    #[error("{path} did not finish within {deadline:?} and was killed")]
    Timeout {
        /// The tool.
        path: PathBuf,
        /// The deadline.
        deadline: Duration,
    },
    /// The request's client cancelled it while the tool ran: the tool was killed with its
    /// process group.
    #[error("{path} was killed: the request was cancelled by its client")]
    Cancelled {
        /// The tool.
        path: PathBuf,
    },
    /// The request's time limit ran out before the tool could be started.
    #[error("{path} was not started: the request's time limit ran out")]
    OutOfTime {
        /// The tool.
        path: PathBuf,
    },
    /// The tool exited unsuccessfully.
    #[error("{command} failed ({status}): {detail}")]
    Failed {
        /// The command line, for the log.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// The last line of its error output (or standard output when that is empty).
        detail: String,
    },
}

impl Tool {
    /// The tool at `path`, which must be absolute.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, ToolError> {
        let path = path.into();
        if !path.is_absolute() {
            return Err(ToolError::NotAbsolute(path));
        }
        Ok(Self {
            path,
            deadline: DEFAULT_DEADLINE,
            recorder: None,
        })
    }

    /// The same tool in dry-run mode: it records its command lines in `recorder` and runs
    /// nothing.
    #[must_use]
    pub fn recording(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Whether this tool only records (see [`Tool::recording`]).
    pub fn is_dry_run(&self) -> bool {
        self.recorder.is_some()
    }

    /// The same tool with another deadline.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The tool's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the tool exists and is a file.
    pub fn exists(&self) -> bool {
        self.path.is_file()
    }

    /// Runs the tool with `args` and returns its output whatever its exit status. It is killed
    /// at its deadline, or at the request's if that comes first (see [`crate::deadline`]).
    pub fn output<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Output, ToolError> {
        self.output_tapped(args, None)
    }

    /// [`Tool::output`], handing what the tool writes to `tap` as it is read.
    pub fn output_tapped<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        tap: Option<OutputTap>,
    ) -> Result<Output, ToolError> {
        let tool = Launch {
            env: TOOL_ENV
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            max_output: MAX_TOOL_OUTPUT,
            tap,
            ..Launch::default()
        };
        self.launch(args, &tool).map(|launched| launched.output)
    }

    /// Runs the tool as `launch` says (the `exec` capability's declared programs; [`Tool::output`]
    /// is a launch with the tools' environment), killed with its process group at its deadline
    /// or the request's. A dry run records the command line and reports success with no output.
    pub fn launch<S: AsRef<OsStr>>(&self, args: &[S], launch: &Launch) -> Result<Launched, ToolError> {
        if crate::deadline::check() == Err(crate::deadline::Stopped::Cancelled) {
            return Err(ToolError::Cancelled {
                path: self.path.clone(),
            });
        }
        let deadline = crate::deadline::cap(self.deadline);
        if deadline.is_zero() {
            return Err(ToolError::OutOfTime {
                path: self.path.clone(),
            });
        }
        if let Some(recorder) = &self.recorder {
            recorder.record(self.command_line(args));
            return Ok(Launched {
                output: Output {
                    status: std::os::unix::process::ExitStatusExt::from_raw(0),
                    stdout: String::new(),
                    stderr: String::new(),
                },
                truncated: false,
                elapsed: Duration::ZERO,
            });
        }
        let mut command = Command::new(&self.path);
        command
            .args(args)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)));
        if let Some(gid) = launch.gid {
            command.gid(gid);
        }
        if let Some(uid) = launch.uid {
            command.uid(uid);
        }
        if let Some(cwd) = &launch.cwd {
            command.current_dir(cwd);
        }
        self.wait(command, launch, deadline)
    }

    /// Starts `command` in a process group of its own, feeds it `launch.stdin`, keeps
    /// `launch.max_output` bytes of each stream (handing all of it to `launch.tap`) and waits
    /// for it, killing the group at `deadline`.
    fn wait(&self, mut command: Command, launch: &Launch, deadline: Duration) -> Result<Launched, ToolError> {
        let (stdin, max_output) = (launch.stdin.clone(), launch.max_output);
        let started = Instant::now();
        let mut child = command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| ToolError::Spawn {
                path: self.path.clone(),
                source,
            })?;
        if let (Some(mut pipe), Some(input)) = (child.stdin.take(), stdin) {
            // On a thread: a program that never reads must not block the daemon; the pipe closes
            // when the thread ends.
            std::thread::spawn(move || {
                let _ = std::io::Write::write_all(&mut pipe, &input);
            });
        }
        let group = rustix::process::Pid::from_child(&child);
        let kill_group = || {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        };
        let tap = |pipe| launch.tap.clone().map(|t| (t, pipe));
        let mut stdout = Stream::new(child.stdout.take(), max_output, tap(Pipe::Stdout));
        let mut stderr = Stream::new(child.stderr.take(), max_output, tap(Pipe::Stderr));
        let mut status = None;
        let mut elapsed = Duration::ZERO;
        let mut pause = Duration::from_millis(1);
        // Output is read as it comes, never waited on past the deadline: whatever holds the
        // pipes (a child the tool left behind, one that escaped its process group) cannot hold
        // the request.
        loop {
            if status.is_none() {
                match exited(&child) {
                    Ok(true) => {
                        // The leader is a zombie until reaped, so its group id cannot be reused
                        // yet: what the tool left in its group is killed with certainty.
                        kill_group();
                        elapsed = started.elapsed();
                        status = Some(child.wait().map_err(|source| ToolError::Spawn {
                            path: self.path.clone(),
                            source,
                        })?);
                    }
                    Ok(false) => {}
                    Err(source) => {
                        kill_group();
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(ToolError::Spawn {
                            path: self.path.clone(),
                            source,
                        });
                    }
                }
            }
            stdout.read_ready();
            stderr.read_ready();
            if status.is_some() && !stdout.is_open() && !stderr.is_open() {
                break;
            }
            if crate::deadline::check() == Err(crate::deadline::Stopped::Cancelled) {
                if status.is_none() {
                    kill_group();
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ToolError::Cancelled {
                        path: self.path.clone(),
                    });
                }
                break;
            }
            let now = started.elapsed();
            if now >= deadline {
                if status.is_none() {
                    kill_group();
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ToolError::Timeout {
                        path: self.path.clone(),
                        deadline,
                    });
                }
                // It finished, but something outside its process group still holds its output:
                // the answer goes without the rest.
                break;
            }
            let wait = pause.min(deadline - now);
            let mut fds: Vec<PollFd<'_>> = [stdout.fd(), stderr.fd()]
                .into_iter()
                .flatten()
                .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
                .collect();
            if fds.is_empty() {
                std::thread::sleep(wait);
            } else {
                let timeout = Timespec::try_from(wait).ok();
                let _ = rustix::event::poll(&mut fds, timeout.as_ref());
            }
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        let status = status.unwrap_or_else(|| unreachable!("the loop ends with a status or returns"));
        Ok(Launched {
            truncated: stdout.dropped || stderr.dropped,
            output: Output {
                status,
                stdout: String::from_utf8_lossy(&stdout.kept).into_owned(),
                stderr: String::from_utf8_lossy(&stderr.kept).into_owned(),
            },
            elapsed,
        })
    }

    /// Runs the tool and returns its output, or [`ToolError::Failed`] when it exits non-zero.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Output, ToolError> {
        let out = self.output(args)?;
        if out.status.success() {
            return Ok(out);
        }
        Err(self.failure(args, &out))
    }

    /// [`ToolError::Failed`] for `out`, a run with `args` that the caller judged a failure
    /// (for tools whose exit status alone does not say: salt-call's 2 is a report).
    pub fn failure<S: AsRef<OsStr>>(&self, args: &[S], out: &Output) -> ToolError {
        ToolError::Failed {
            command: self.command_line(args),
            status: out.status,
            detail: last_line(&[&out.stderr, &out.stdout]),
        }
    }

    /// The command line as text, for messages (never run through a shell).
    pub fn command_line<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let mut line = self.path.display().to_string();
        for a in args {
            line.push(' ');
            line.push_str(&a.as_ref().to_string_lossy());
        }
        line
    }
}

/// The last non-empty line of the first of `texts` that has one (a failed tool's stderr, then
/// its stdout), or `(no output)`.
pub fn last_line(texts: &[&str]) -> String {
    texts
        .iter()
        .find_map(|s| s.lines().rev().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("(no output)")
        .to_owned()
}

/// Marks every descriptor the daemon inherited beyond standard input, output and error
/// close-on-exec, so that no tool or declared program it starts gets one (a test harness, a
/// shell or a supervisor may leave pipes and sockets open; the daemon's own descriptors are
/// close-on-exec already, as Rust opens them). Call it first thing in `main`, before any other
/// thread runs or any file is opened.
pub fn close_inherited_descriptors() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let numbers: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&n| n > 2)
        .collect();
    for n in numbers {
        // SAFETY: `n` was listed open in /proc/self/fd, the process is still single-threaded
        // (nothing can close it meanwhile), and the borrow lives only for this one fcntl; a
        // number that was the listing's own directory, closed since, fails with EBADF, ignored.
        #[allow(unsafe_code)]
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(n) };
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
}

/// Whether `child` has exited, without reaping it (its process group stays reserved).
fn exited(child: &std::process::Child) -> std::io::Result<bool> {
    use rustix::process::{Pid, WaitId, WaitIdOptions};
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    match rustix::process::waitid(WaitId::Pid(Pid::from_child(child)), options) {
        Ok(found) => Ok(found.is_some()),
        Err(e) => Err(e.into()),
    }
}

/// One output pipe of a tool, read without blocking as data comes, keeping at most `max` bytes
/// (the rest is read and dropped, so the tool never blocks on a full pipe).
struct Stream<P> {
    pipe: Option<P>,
    kept: Vec<u8>,
    max: usize,
    dropped: bool,
    tap: Option<(OutputTap, Pipe)>,
}

impl<P: Read + AsFd> Stream<P> {
    fn new(pipe: Option<P>, max: usize, tap: Option<(OutputTap, Pipe)>) -> Self {
        // A pipe that cannot be made non-blocking is not read at all rather than risk a wait
        // without a deadline (it has never happened: pipes always can).
        let pipe = pipe.filter(|p| rustix::fs::fcntl_setfl(p, rustix::fs::OFlags::NONBLOCK).is_ok());
        Self {
            pipe,
            kept: Vec::new(),
            max,
            dropped: false,
            tap,
        }
    }

    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.pipe.as_ref().map(AsFd::as_fd)
    }

    fn is_open(&self) -> bool {
        self.pipe.is_some()
    }

    /// Reads what the pipe holds now; at its end (or on an error) it is closed.
    fn read_ready(&mut self) {
        let Some(pipe) = &mut self.pipe else {
            return;
        };
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some((tap, pipe)) = &self.tap {
                        tap.call(*pipe, &buf[..n]);
                    }
                    let room = self.max.saturating_sub(self.kept.len());
                    self.dropped |= n > room;
                    self.kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.pipe = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_refused() {
        assert!(matches!(Tool::new("ufw"), Err(ToolError::NotAbsolute(_))));
    }

    #[test]
    fn runs_without_a_shell_and_with_a_clean_environment() {
        let env = Tool::new("/usr/bin/env").expect("absolute");
        let out = env.run::<&str>(&[]).expect("env runs");
        let mut lines: Vec<&str> = out.stdout.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
        // A shell metacharacter is just an argument.
        let echo = Tool::new("/bin/echo").expect("absolute");
        let out = echo.run(&["$(id)", ";", "|"]).expect("echo runs");
        assert_eq!(out.stdout, "$(id) ; |\n");
    }

    #[test]
    fn failure_carries_the_last_error_line() {
        let sh = Tool::new("/bin/sh").expect("absolute");
        let err = sh
            .run(&["-c", "echo first >&2; echo 'the reason' >&2; exit 3"])
            .expect_err("exit 3 fails");
        match err {
            ToolError::Failed { detail, status, .. } => {
                assert_eq!(detail, "the reason");
                assert_eq!(status.code(), Some(3));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_tool_past_its_deadline_is_killed() {
        let sleep = Tool::new("/bin/sleep")
            .expect("absolute")
            .with_deadline(Duration::from_millis(100));
        let started = Instant::now();
        let err = sleep.run(&["10"]).expect_err("killed");
        assert!(matches!(err, ToolError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn what_a_tool_started_dies_with_it_at_the_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        let sh = Tool::new("/bin/sh")
            .expect("absolute")
            .with_deadline(Duration::from_millis(300));
        let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let err = sh.run(&["-c", &script]).expect_err("killed");
        assert!(matches!(err, ToolError::Timeout { .. }), "{err:?}");
        let pid = std::fs::read_to_string(&pid_file).expect("pid written");
        let stat = format!("/proc/{}/stat", pid.trim());
        let started = Instant::now();
        // Gone, or a zombie waiting for whoever reaps orphans here.
        while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the grandchild outlived its tool"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the process in `pid_file` is gone (or a zombie for whoever reaps orphans).
    fn gone(pid_file: &Path) {
        let pid = std::fs::read_to_string(pid_file).expect("pid written");
        let stat = format!("/proc/{}/stat", pid.trim());
        let started = Instant::now();
        while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{pid} outlived its tool"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn what_a_tool_leaves_in_its_group_dies_when_it_exits_and_never_holds_the_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        let sh = Tool::new("/bin/sh").expect("absolute");
        // The shell exits at once; the sleep it leaves keeps stdout open.
        let script = format!("sleep 60 & echo $! > {}; echo done", pid_file.display());
        let started = Instant::now();
        let out = sh.run(&["-c", &script]).expect("runs");
        assert_eq!(out.stdout, "done\n");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        gone(&pid_file);
    }

    #[test]
    fn output_held_by_a_process_outside_the_group_is_not_waited_for_past_the_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        let sh = Tool::new("/bin/sh")
            .expect("absolute")
            .with_deadline(Duration::from_millis(500));
        // setsid: a process group of its own, which the group kill cannot reach.
        let script = format!("setsid sleep 60 & echo $! > {}; echo done", pid_file.display());
        let started = Instant::now();
        let out = sh.run(&["-c", &script]).expect("the shell finished");
        assert_eq!(out.stdout, "done\n");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let pid = std::fs::read_to_string(&pid_file).expect("pid");
        let _ = Command::new("/bin/kill").args(["-9", pid.trim()]).status();
    }

    #[test]
    fn a_tool_run_for_a_module_ends_at_the_request_deadline() {
        // The tool's own deadline is 30 s; the request has 200 ms left.
        let sleep = Tool::new("/bin/sleep").expect("absolute");
        let started = Instant::now();
        let err = crate::deadline::scope(started + Duration::from_millis(200), || sleep.run(&["10"]))
            .expect_err("killed at the request's deadline");
        assert!(matches!(err, ToolError::Timeout { .. }), "{err:?}");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{took:?}");
        // With no time left it does not start at all.
        let err = crate::deadline::scope(Instant::now(), || sleep.run(&["10"])).expect_err("no time");
        assert!(matches!(err, ToolError::OutOfTime { .. }), "{err:?}");
    }

    #[test]
    fn a_cancel_kills_a_running_tool_with_its_group_at_once() {
        use crate::deadline::{Cancel, Until};
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        let sh = Tool::new("/bin/sh").expect("absolute");
        let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let cancel = Cancel::new();
        let until =
            Until::at(Instant::now() + Duration::from_secs(60)).or_cancelled(Some(Arc::clone(&cancel)));
        let started = Instant::now();
        let err = std::thread::scope(|s| {
            s.spawn(|| {
                while std::fs::read_to_string(&pid_file).map_or(true, |p| !p.ends_with('\n')) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                cancel.cancel();
            });
            crate::deadline::scope(until.clone(), || sh.run(&["-c", &script]))
        })
        .expect_err("killed at the cancel");
        assert!(matches!(err, ToolError::Cancelled { .. }), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        gone(&pid_file);
        // Once cancelled, nothing more starts.
        let err = crate::deadline::scope(until, || sh.run(&["-c", "true"])).expect_err("cancelled");
        assert!(matches!(err, ToolError::Cancelled { .. }), "{err:?}");
    }

    #[test]
    fn a_missing_tool_is_a_spawn_error() {
        let t = Tool::new("/nonexistent/tool").expect("absolute");
        assert!(matches!(t.run::<&str>(&[]), Err(ToolError::Spawn { .. })));
    }

    #[test]
    fn output_beyond_the_cap_is_dropped_without_blocking() {
        let sh = Tool::new("/bin/sh").expect("absolute");
        let out = sh
            .run(&["-c", "head -c 3000000 /dev/zero"])
            .expect("runs to the end");
        assert_eq!(out.stdout.len(), MAX_TOOL_OUTPUT);
    }
}
