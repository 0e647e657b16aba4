//! A `.hgrm` file parses back to the percentiles of the histogram it was written from, for
//! shapes like the benchmarks': a tight body, a long tail, a few huge stalls.

use quantum_daemon::latency::report::{hgrm, new_histogram, PERCENTILES};

/// `(value, percentile, total count)` rows of a `.hgrm` text.
fn parse(text: &str) -> Vec<(f64, f64, u64)> {
    let mut lines = text.lines();
    let header: Vec<_> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    assert_eq!(lines.next(), Some(""));
    lines
        .take_while(|l| !l.starts_with('#'))
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (
                c[0].parse().unwrap(),
                c[1].parse().unwrap(),
                c[2].parse().unwrap(),
            )
        })
        .collect()
}

/// The value a reader of the file takes for quantile `q`: the first row at or past it.
fn value_at(rows: &[(f64, f64, u64)], q: f64) -> u64 {
    rows.iter().find(|r| r.1 >= q).unwrap().0 as u64
}

#[test]
fn hgrm_files_parse_back_to_the_same_percentiles() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for name in ["uniform body", "long tail", "stalls"] {
        let mut h = new_histogram();
        for i in 0..200_000u64 {
            let r = rnd();
            let v = match name {
                "uniform body" => 60 + r % 40,
                "long tail" => 80 + (1u64 << (r % 20)),
                _ if i % 50_000 == 0 => 75_000_000,
                _ => 150,
            };
            h.record(v).unwrap();
        }
        let rows = parse(&hgrm(&h));
        assert_eq!(
            rows.last().unwrap().2,
            h.len(),
            "{name}: every sample counted"
        );
        assert!(
            rows.windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].2 <= w[1].2),
            "{name}"
        );
        for (label, q) in PERCENTILES {
            assert_eq!(value_at(&rows, q), h.value_at_quantile(q), "{name} {label}");
        }
        assert_eq!(rows.last().unwrap().0 as u64, h.max(), "{name}: max");
        let text = hgrm(&h);
        assert!(
            text.contains(&format!("Total count    = {:>12}]", h.len())),
            "{text}"
        );
    }
}
