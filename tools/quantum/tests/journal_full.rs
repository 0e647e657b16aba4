//! A full disk under the journal: the daemon pauses intake with one clear error, keeps every
//! plan it accepted, and goes on once there is room, with real processes on a real tmpfs
//! (mounting one needs root; elsewhere the test says SKIPPED).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{wait_for, Instance};

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_full_disk_pauses_intake_and_loses_nothing() {
    let mut inst = Instance::new("diskfull");
    let mnt = std::env::temp_dir().join(format!("{}-fs", inst.name));
    // Room for the first 1 MiB segment and the journal's small files, not for a second one.
    let Some(fs) = Tmpfs::mount(mnt.clone(), "1536k") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let jdir = mnt.join("journal");
    let jdir_s = jdir.display().to_string();
    inst.start_daemon_fed_by_hand(
        &["--quiet"],
        &[
            ("QUANTUM_JOURNAL_DIR", &jdir_s),
            ("QUANTUM_JOURNAL_SEGMENT_MB", "1"),
        ],
    );
    // More events than one segment holds (a HOLD plan is two events: accepted is not one of
    // them, its result is; 20,000 plans fill 1 MiB of 80-byte records).
    let name = inst.name.clone();
    let jdir2 = jdir_s.clone();
    let injector = std::thread::spawn(move || {
        let out = Command::new(common::bin())
            .args(["ctl", "inject", "--instance", &name, "--generate", "20000"])
            .args(["--decision", "HOLD", "--wait-secs", "120"])
            .env("QUANTUM_JOURNAL_DIR", &jdir2)
            .output()
            .expect("ctl inject");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    });
    wait_for(60, "the daemon to say the disk is full", || {
        inst.log_has("journal: the disk is full")
    });
    assert_eq!(inst.counter("journal.no_space"), 1);
    let stalled_at = inst.counter("results");
    assert!(stalled_at < 20_000, "it cannot have answered every plan");
    // Paused: nothing more is answered, and the daemon is alive.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(inst.counter("results"), stalled_at);
    assert!(inst.counters().owner_alive());
    // Room again: it goes on by itself and answers every plan, once.
    fs.resize("8m");
    let (ok, err) = injector.join().unwrap();
    assert!(ok, "{err}");
    assert!(err.contains("durably accepted 20000 of 20000"), "{err}");
    wait_for(60, "every plan answered", || {
        inst.counter("results") == 20_000
    });
    assert_eq!(inst.counter("journal.no_space"), 0);
    assert!(inst.log_has("journal: there is room again; intake resumed"));
}
