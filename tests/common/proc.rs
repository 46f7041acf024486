//! Processes: run one to completion with a deadline, start one in the
//! background with its output in a log, look at it in /proc, and stop it.
//! Every process the harness starts dies with the test process, and the
//! harness signals only PIDs it started (or that those forked).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{SHORT, wait_until};

/// Children die with the test process even if it is SIGKILLed (e.g. by a CI
/// timeout), so nothing keeps running in a leaked namespace.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; nothing else runs in the closure.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            Ok(())
        })
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command to completion with a deadline (kills it and panics when
/// the deadline passes), feeding it `input` on stdin.
pub fn run_with(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    let what = describe(cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = die_with_parent(cmd)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not finish within {timeout:?}");
        }
        thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// Runs a command (deadline [`SHORT`]); panics (with its output) unless it
/// exits 0. Returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let what = describe(cmd);
    let out = run_with(cmd, None, SHORT);
    assert!(
        out.status.success(),
        "`{what}` failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sh -c script` through [`run_ok`].
pub fn sh(script: &str) -> String {
    run_ok(Command::new("sh").arg("-c").arg(script))
}

/// Opens `path` for appending (creating it): a log that survives restarts.
pub fn append_log(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open log {}: {e}", path.display()))
}

/// Starts `cmd` in the background, stdin closed, stdout and stderr
/// appended to `log`.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let what = describe(cmd);
    let out = append_log(log);
    let err = out.try_clone().unwrap();
    die_with_parent(cmd.stdin(Stdio::null()).stdout(out).stderr(err))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"))
}

/// A log file's text ("" while it does not exist).
pub fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Process state letter from /proc/PID/stat (`None` once it is gone).
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// True while the process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// (pid, parent pid) of every process, from /proc.
fn parents() -> Vec<(u32, u32)> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(pp) = rest.split_whitespace().nth(1).and_then(|v| v.parse().ok()) {
            parent.push((p, pp));
        }
    }
    parent
}

/// A child of `pid` (the first /proc lists), if it has one.
pub fn child_of(pid: u32) -> Option<u32> {
    parents()
        .into_iter()
        .find_map(|(p, pp)| (pp == pid).then_some(p))
}

/// Every living process below `pid` (children, grandchildren, …), from
/// the parent PIDs in /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let parent = parents();
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(q) = todo.pop() {
        for &(p, pp) in &parent {
            if pp == q && !out.contains(&p) {
                out.push(p);
                todo.push(p);
            }
        }
    }
    out
}

/// True once the process `pid` (in its own namespace) has a socket bound
/// to `port` in /proc/PID/net/{proto} (TCP: listening).
pub fn listening(pid: u32, proto: &str, port: u16) -> bool {
    let Ok(table) = fs::read_to_string(format!("/proc/{pid}/net/{proto}")) else {
        return false;
    };
    let want = format!(":{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&want) && (proto != "tcp" || f[3] == "0A")
    })
}

/// Waits ([`SHORT`]) until `pid` listens on `port` (see [`listening`]);
/// panics with its `log` if it dies first.
pub fn wait_listening(name: &str, pid: u32, proto: &str, port: u16, log: &Path) {
    wait_until(&format!("{name} to listen on :{port}"), SHORT, || {
        assert!(alive(pid), "{name} died:\n{}", read_log(log));
        listening(pid, proto, port)
    });
}

/// kill(2), which must succeed.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain kill(2) on a PID this lab started and has not reaped.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// SIGKILLs whichever of `pids` (forked by a process the harness started)
/// are still alive.
pub fn kill_alive(pids: &[u32]) {
    for &pid in pids {
        if alive(pid) {
            // SAFETY: kill(2) on a process our child forked, alive just now.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// Sends `sig`, waits up to `grace` for the child to exit (reaping it), then
/// SIGKILLs it. Returns how long it took and its exit status.
pub fn stop_child(child: &mut Child, sig: libc::c_int, grace: Duration) -> (Duration, ExitStatus) {
    let start = Instant::now();
    if let Ok(Some(status)) = child.try_wait() {
        return (Duration::ZERO, status);
    }
    // SAFETY: the child has not been reaped yet, so its PID is still ours.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return (start.elapsed(), status);
        }
        if start.elapsed() > grace {
            let _ = child.kill();
            let status = child.wait().expect("wait after SIGKILL");
            return (start.elapsed(), status);
        }
        thread::sleep(Duration::from_millis(2));
    }
}
