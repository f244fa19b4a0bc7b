//! The README's tables are checked against the code so they cannot drift.

use firefly_core::config::Config;
use firefly_core::ErrorCode;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md")
}

#[test]
fn every_error_code_is_in_the_readme_with_its_status() {
    let text = readme();
    for code in ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.status());
        assert!(text.contains(&row), "README lacks the row starting {row}");
    }
    let rows = text
        .lines()
        .filter(|l| l.starts_with("| `") && l.split('|').nth(2).is_some_and(|s| s.trim().parse::<u16>().is_ok()));
    assert_eq!(rows.count(), ErrorCode::ALL.len(), "README lists codes the code does not have");
}

fn keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    match value.as_object() {
        Some(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                keys(&key, v, out);
            }
        }
        None => out.push(prefix.to_owned()),
    }
}

#[test]
fn every_configuration_key_is_in_the_readme() {
    let text = readme();
    let mut all = Vec::new();
    keys("", &serde_json::to_value(Config::default()).unwrap(), &mut all);
    assert!(all.len() > 20, "{all:?}");
    for key in all {
        assert!(text.contains(&format!("| `{key}` |")), "README's configuration table lacks `{key}`");
    }
}
