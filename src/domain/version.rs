//! App versions in version order: `3.10.0 > 3.9.2`. Each version gets a
//! sortable text key (four zero-padded numbers), stored beside the device's
//! version so that the store compares keys as text, with an index.

/// Numbers of a version key.
const PARTS: usize = 4;
/// Digits of each number.
const DIGITS: usize = 9;

/// The key of a version given in a filter: 1 to 4 numbers of up to 9 digits
/// joined by dots (`3.10` equals `3.10.0`).
pub fn parse(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split('.').collect();
    let ok = parts.len() <= PARTS
        && parts.iter().all(|p| !p.is_empty() && p.len() <= DIGITS && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| key_of(&parts.iter().map(|p| p.parse().unwrap_or(0)).collect::<Vec<u64>>()))
}

/// The key of a device's version, read leniently: the leading number of
/// each dotted part, up to the first part without one (`3.2.0-beta` is
/// 3.2.0). `None` when it starts with no number at all.
pub fn device_key(text: &str) -> Option<String> {
    let mut numbers = Vec::new();
    for part in text.split('.').take(PARTS) {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() || digits.len() > DIGITS {
            break;
        }
        numbers.push(digits.parse().unwrap_or(0));
        if digits.len() < part.len() {
            break;
        }
    }
    (!numbers.is_empty()).then(|| key_of(&numbers))
}

fn key_of(numbers: &[u64]) -> String {
    (0..PARTS).map(|i| format!("{:0DIGITS$}", numbers.get(i).copied().unwrap_or(0))).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_version_order() {
        let key = |s| parse(s).expect("version");
        assert!(key("3.10.0") > key("3.9.2"));
        assert!(key("10") > key("9.99.99"));
        assert_eq!(key("3.10"), key("3.10.0"));
        assert_eq!(parse("3.x"), None);
        assert_eq!(parse("1.2.3.4.5"), None);
        assert_eq!(parse(""), None);
        assert_eq!(device_key("3.2.0-beta"), parse("3.2.0"));
        assert_eq!(device_key("4.1 (233)"), parse("4.1"));
        assert_eq!(device_key("beta"), None);
    }
}
