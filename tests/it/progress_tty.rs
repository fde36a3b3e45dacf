//! Progress as a person sees it: `pgmove apply` under tmux draws bars on the terminal
//! (stderr), a piped stderr gets plain log lines without a bar or escape code, and
//! `--format json` draws no bar and keeps stdout to the JSON summary. The screen is read while
//! the dump step's spinner is up (test pause `dump-step`).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Cluster, Profile};

/// A tmux server of its own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `script` (a shell script) in a 160x40 terminal.
    fn start(name: &str, script: &Path) -> Tmux {
        let socket = format!("pgmove-test-{}-{name}", std::process::id());
        let out = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "40",
            ])
            .args(["sh", &script.display().to_string()])
            .output()
            .expect("tmux is missing: apt-get install tmux");
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmux { socket }
    }

    /// What the terminal shows now.
    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Waits until the screen shows `text`; the screen then.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} on the screen within 60 s:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// A dump-restore plan from database `src_db` to `dst_db` of `pg`.
fn write_plan(dir: &Path, name: &str, pg: &Cluster, src_db: &str, dst_db: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: {name}\nstrategy: dump-restore\njobs: 2\nsource:\n  dsn: postgres://postgres@127.0.0.1:{port}/{src_db}\n  password: {{env: PW}}\n  sslmode: disable\ntarget:\n  dsn: postgres://postgres@127.0.0.1:{port}/{dst_db}\n  password: {{env: PW}}\n  sslmode: disable\n",
            port = pg.port
        ),
    )
    .expect("write plan");
    path
}

/// A shell script that runs `pgmove ARGS` paused at the dump step until `resume` exists,
/// then prints its exit code and stays (so the screen can be read).
fn script(dir: &Path, name: &str, pg: &Cluster, args: &str, resume: &Path) -> PathBuf {
    let path = dir.join(format!("{name}.sh"));
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    std::fs::write(
        &path,
        format!(
            "export PW={pw} XDG_CACHE_HOME={cache} PGMOVE_TEST_PAUSE=dump-step PGMOVE_TEST_RESUME_FILE={resume} NO_COLOR=1 TERM=xterm-256color\n{bin} {args}\necho \"EXIT=$?\"\nsleep 600\n",
            pw = quote(&pg.password),
            cache = quote(&dir.join("cache").display().to_string()),
            resume = quote(&resume.display().to_string()),
            bin = quote(env!("CARGO_BIN_EXE_pgmove")),
        ),
    )
    .expect("write script");
    path
}

/// A bar as the terminal shows it: `dump [` ... `] 0/0`.
fn has_bar(screen: &str) -> bool {
    screen
        .lines()
        .any(|l| l.contains("dump [") && l.contains("] "))
}

#[test]
fn bars_on_a_terminal_plain_lines_on_a_pipe_and_none_with_json() {
    let pg = support::shared(Profile::Plain);
    let src = pg.fresh_db("tty_src");
    pg.psql(&src, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g;");
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();

    // On a terminal: the dump step's bar (a spinner: no item count) is on the screen.
    let dst = pg.fresh_db("tty_dst");
    let plan = write_plan(dir, "tty-bars", pg, &src, &dst);
    let resume = dir.join("resume-tty");
    let run = script(
        dir,
        "tty",
        pg,
        &format!("apply {} --yes", plan.display()),
        &resume,
    );
    let tmux = Tmux::start("tty", &run);
    tmux.wait_for("test pause at dump-step");
    // The spinner ticks every 200 ms: give it a few.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut screen = tmux.screen();
    while !has_bar(&screen) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        screen = tmux.screen();
    }
    assert!(
        has_bar(&screen),
        "no progress bar on the terminal:\n{screen}"
    );
    std::fs::write(&resume, "").expect("resume");
    let screen = tmux.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    drop(tmux);

    // On a pipe: plain log lines, no bar, no escape code.
    let dst = pg.fresh_db("pipe_dst");
    let plan = write_plan(dir, "pipe-lines", pg, &src, &dst);
    let out = Command::new(env!("CARGO_BIN_EXE_pgmove"))
        .args(["apply", &plan.display().to_string(), "--yes"])
        .env("PW", &pg.password)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run pgmove");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("step started") && stderr.contains("dump"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "an escape code on a pipe:\n{stderr}"
    );
    assert!(!has_bar(&stderr), "a bar on a pipe:\n{stderr}");

    // --format json on a terminal: no bar on the screen, only the JSON summary on stdout.
    let dst = pg.fresh_db("json_dst");
    let plan = write_plan(dir, "json-quiet", pg, &src, &dst);
    let resume = dir.join("resume-json");
    let stdout = dir.join("stdout.json");
    let run = script(
        dir,
        "json",
        pg,
        &format!(
            "--format json apply {} --yes > {}",
            plan.display(),
            stdout.display()
        ),
        &resume,
    );
    let tmux = Tmux::start("json", &run);
    tmux.wait_for("test pause at dump-step");
    std::thread::sleep(Duration::from_millis(600)); // three spinner ticks, were there a bar
    let screen = tmux.screen();
    assert!(!has_bar(&screen), "a bar with --format json:\n{screen}");
    std::fs::write(&resume, "").expect("resume");
    let screen = tmux.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    let json = std::fs::read_to_string(&stdout).expect("stdout");
    let value: serde_json::Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("stdout with --format json is not JSON ({e}):\n{json}"));
    assert!(value.is_object(), "{json}");
}
