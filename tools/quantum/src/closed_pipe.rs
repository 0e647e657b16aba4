//! A reader that closes our stdout early (`quantum ctl tail | head -3`) ends the output
//! quietly: no panic, no error line, exit status 0.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with `BrokenPipe` instead of killing
//! the process. That is kept on purpose: killed by the signal, `ctl tail` would leave its
//! consumer role on `results` looking dead (a peer death in the daemon's counters) instead of
//! detaching, and servers (`ctl metrics`, the bridges) must survive a client that hangs up.
//! Two paths reach us:
//! - a command that writes with `write!`/`?` returns the `BrokenPipe` error up to `main`, which
//!   asks [`is_closed_output`] (only for commands whose job is to print, see `main.rs`);
//! - `println!` panics on a closed stdout; [`install_panic_hook`] turns exactly that panic into
//!   a quiet exit and leaves every other panic to the default hook.

use std::io::ErrorKind;

/// True when the error (or any error in its chain) is a write to a closed pipe.
pub fn is_closed_output(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}

/// Exits 0 on the panic `print!`/`println!` raise when stdout is a closed pipe.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if is_print_to_closed_pipe(payload) {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// The message std's print macros panic with when stdout is a pipe nobody reads any more.
fn is_print_to_closed_pipe(msg: &str) -> bool {
    msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_is_found_anywhere_in_the_chain() {
        let io = std::io::Error::from(ErrorKind::BrokenPipe);
        let e = anyhow::Error::from(io).context("writing a result");
        assert!(is_closed_output(&e));
        let other = anyhow::Error::from(std::io::Error::from(ErrorKind::NotFound));
        assert!(!is_closed_output(&other));
        assert!(!is_closed_output(&anyhow::anyhow!(
            "Broken pipe in a message only"
        )));
    }

    #[test]
    fn only_the_print_macros_closed_pipe_panic_is_quiet() {
        assert!(is_print_to_closed_pipe(
            "failed printing to stdout: Broken pipe (os error 32)"
        ));
        assert!(!is_print_to_closed_pipe(
            "failed printing to stdout: No space left on device (os error 28)"
        ));
        assert!(!is_print_to_closed_pipe("index out of bounds"));
    }
}
