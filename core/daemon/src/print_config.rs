//! `quantum run --print-config [--defaults]`: the configuration as TOML that reads back, with
//! every key of [`KEYS`] shown (an unset optional key as a comment), its one-line description,
//! its environment variable, and, when printing the effective configuration, the default of a
//! value that differs from it.

use std::fmt::Write as _;

use super::config::{env_name, DaemonConfig, KEYS, LEGACY_ENV};

/// The annotated TOML of `cfg`; `defaults` are the built-in values, `is_defaults` says that
/// `cfg` is them (then no "default:" notes).
pub fn annotated(cfg: &DaemonConfig, defaults: &DaemonConfig, is_defaults: bool) -> String {
    let mut out = String::new();
    let what = if is_defaults {
        "built-in defaults"
    } else {
        "effective configuration: defaults, then --config FILE, then the environment, then flags"
    };
    let _ = writeln!(out, "# quantum run: {what}.");
    let _ = writeln!(
        out,
        "# Each key can be set in the TOML file (--config) or by the variable named above it; an empty"
    );
    let _ = writeln!(out, "# variable unsets an optional key.");
    let mut section = "";
    for key in KEYS {
        let (sect, name) = key.path.rsplit_once('.').unwrap_or(("", key.path));
        if sect != section {
            section = sect;
            let _ = writeln!(out, "\n[{sect}]");
        }
        let _ = writeln!(out, "\n# {}", key.doc);
        let legacy = LEGACY_ENV
            .iter()
            .find(|(_, k)| *k == key.path)
            .map(|(var, _)| format!(" (legacy {var}; {} wins)", env_name(key.path)))
            .unwrap_or_default();
        let _ = writeln!(out, "# env {}{legacy}", env_name(key.path));
        match cfg.value_of(key.path) {
            Some(v) => {
                let default = defaults.value_of(key.path);
                match default {
                    Some(d) if !is_defaults && d != v => {
                        let _ = writeln!(out, "{name} = {v}  # default {d}");
                    }
                    None if !is_defaults => {
                        let _ = writeln!(out, "{name} = {v}  # default: unset");
                    }
                    _ => {
                        let _ = writeln!(out, "{name} = {v}");
                    }
                }
            }
            None => {
                let _ = writeln!(out, "# {name} = (unset)");
            }
        }
    }
    let _ = writeln!(
        out,
        "\n# Symbols, in id order: the file's [[symbols]] replace this list (no variables).\n\
         # Decimals are strings; market_* default to the LOT_SIZE values."
    );
    #[derive(serde::Serialize)]
    struct Symbols<'a> {
        symbols: &'a [super::config::SymbolSection],
    }
    match toml::to_string(&Symbols {
        symbols: &cfg.symbols,
    }) {
        Ok(t) => out.push_str(&t),
        Err(e) => {
            let _ = writeln!(out, "# cannot print the symbols: {e}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_print_every_key_with_its_variable_and_read_back() {
        let d = DaemonConfig::default();
        let text = annotated(&d, &d, true);
        for key in KEYS {
            assert!(text.contains(&env_name(key.path)), "{} missing", key.path);
            let name = key.path.rsplit('.').next().unwrap();
            assert!(
                text.contains(&format!("\n{name} = "))
                    || text.contains(&format!("# {name} = (unset)"))
            );
        }
        assert!(text.contains("# max_notional_order = (unset)"), "{text}");
        assert!(text.contains("legacy APPLY_PERMIT_WAIT_MS"), "{text}");
        assert!(!text.contains("# default"), "{text}");
        assert_eq!(DaemonConfig::from_toml(&text).unwrap(), d);
    }

    #[test]
    fn effective_values_that_differ_name_their_default_and_read_back() {
        let d = DaemonConfig::default();
        let mut c = d.clone();
        c.engine.apply_wait_ms = 700;
        c.governor.min_kill_score = Some("0.5".into());
        c.host.cpus = "2-3".into();
        let text = annotated(&c, &d, false);
        assert!(
            text.contains("apply_wait_ms = 700  # default 1200"),
            "{text}"
        );
        assert!(
            text.contains("min_kill_score = \"0.5\"  # default: unset"),
            "{text}"
        );
        assert!(text.contains("cpus = \"2-3\"  # default \"\""), "{text}");
        assert_eq!(DaemonConfig::from_toml(&text).unwrap(), c);
    }

    #[test]
    fn every_key_is_a_field_and_every_field_a_key() {
        let d = DaemonConfig::default();
        let v = toml::Value::try_from(&d).unwrap();
        let mut fields = Vec::new();
        for (k, val) in v.as_table().unwrap() {
            match val {
                toml::Value::Table(t) => fields.extend(t.keys().map(|f| format!("{k}.{f}"))),
                toml::Value::Array(_) => {} // [[symbols]]: file only
                _ => fields.push(k.clone()),
            }
        }
        for f in &fields {
            assert!(KEYS.iter().any(|k| k.path == f), "{f} has no entry in KEYS");
        }
        for k in KEYS {
            let mut c = DaemonConfig::default();
            // Every key is settable from the environment (unset optionals stay unset on "").
            c.apply_env(|var| {
                (var == env_name(k.path)).then(|| {
                    d.value_of(k.path)
                        .map_or(String::new(), |v| v.trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|e| panic!("{}: {e}", k.path));
        }
    }
}
