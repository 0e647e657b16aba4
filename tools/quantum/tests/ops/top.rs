//! `ctl top` on a live daemon: one frame as text (`--once`), and the interactive view driven
//! in tmux (skipped, saying so, where tmux is not installed) showing rates that move.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, Instance};

/// The line of `counter` in a frame, and the rate it shows.
fn rate_of(frame: &str, counter: &str) -> Option<f64> {
    let line = frame
        .lines()
        .find(|l| l.split_whitespace().any(|w| w.trim_matches('│') == counter))?;
    line.split_whitespace()
        .find_map(|w| w.strip_suffix("/s"))?
        .parse()
        .ok()
}

fn flood(inst: &mut Instance, n: &str) {
    let name = inst.name.clone();
    inst.spawn(
        &[
            "ctl",
            "inject",
            "--instance",
            &name,
            "--generate",
            n,
            "--decision",
            "HOLD",
        ],
        Stdio::null(),
    );
}

#[test]
fn once_prints_a_frame_with_the_instance_its_rings_and_rates() {
    let mut inst = Instance::new("top-once");
    inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    flood(&mut inst, "50000000");
    let o = Command::new(bin())
        .args([
            "ctl",
            "top",
            "--instance",
            &inst.name,
            "--once",
            "--interval-ms",
            "500",
        ])
        .args(["--width", "130", "--height", "34"])
        .output()
        .unwrap();
    let frame = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        frame.contains(&format!("instance {}", inst.name)),
        "{frame}"
    );
    assert!(frame.contains("running"), "{frame}");
    assert!(
        frame
            .lines()
            .any(|l| l.contains("ctl") && l.contains("/65536")),
        "{frame}"
    );
    assert!(frame.contains("BTCUSDT"), "{frame}");
    let r = rate_of(&frame, "plans_in").unwrap_or_else(|| panic!("no plans_in rate:\n{frame}"));
    assert!(r > 0.0, "{frame}");
}

/// A tmux server of this test's own, killed however the test ends.
struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .expect("tmux")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn the_live_view_in_tmux_shows_moving_rates_and_quits_on_q() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed (apt-get install tmux runs this test)");
        return;
    }
    let mut inst = Instance::new("top-tmux");
    inst.start_daemon_fed_by_hand(&["--quiet"], &[]);
    let tmux = Tmux(format!("quantum-test-{}", std::process::id()));
    let top = format!(
        "{} ctl top --instance {} --interval-ms 300",
        bin(),
        inst.name
    );
    let o = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "130",
        "-y",
        "34",
        &top,
    ]);
    assert!(o.status.success(), "{o:?}");
    flood(&mut inst, "50000000");
    let end = Instant::now() + Duration::from_secs(60);
    let mut frames = Vec::new();
    // Two frames with different plan rates: the view is live, not a still.
    loop {
        let o = tmux.cmd(&["capture-pane", "-p", "-t", "top"]);
        let frame = String::from_utf8_lossy(&o.stdout).into_owned();
        if let Some(r) = rate_of(&frame, "plans_in").filter(|r| *r > 0.0) {
            if frames.iter().all(|(prev, _)| *prev != r) {
                frames.push((r, frame.clone()));
            }
        }
        if frames.len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < end,
            "no moving plans_in rate on screen:\n{frame}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("ctl top in tmux:\n{}", frames[1].1);
    assert!(frames[1].1.contains("Rings") && frames[1].1.contains("Book"));
    tmux.cmd(&["send-keys", "-t", "top", "q"]);
    let end = Instant::now() + Duration::from_secs(20);
    while tmux.cmd(&["has-session", "-t", "top"]).status.success() {
        assert!(Instant::now() < end, "ctl top did not quit on q");
        std::thread::sleep(Duration::from_millis(100));
    }
}
