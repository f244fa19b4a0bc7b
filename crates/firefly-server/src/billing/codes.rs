//! Redemption codes: `FF-XXXXX-XXXXX-XXXXX-XXXXX`, 20 Crockford base32 characters (100
//! random bits). Only a SHA-256 of the normalized code is stored.

use rand::Rng;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const GROUPS: usize = 4;
const GROUP_LEN: usize = 5;

pub fn generate() -> String {
    let mut rng = rand::thread_rng();
    let groups: Vec<String> =
        (0..GROUPS).map(|_| (0..GROUP_LEN).map(|_| ALPHABET[rng.gen_range(0..32)] as char).collect()).collect();
    format!("FF-{}", groups.join("-"))
}

/// What a user typed, normalized: uppercase, no separators or spaces, Crockford's
/// look-alikes mapped (O→0, I/L→1). `None` if it cannot be a code.
pub fn normalize(input: &str) -> Option<String> {
    let mut out = String::with_capacity(GROUPS * GROUP_LEN + 2);
    for c in input.trim().chars() {
        match c.to_ascii_uppercase() {
            '-' | ' ' => {}
            'O' => out.push('0'),
            'I' | 'L' => out.push('1'),
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => out.push(c),
            _ => return None,
        }
        if out.len() > GROUPS * GROUP_LEN + 2 {
            return None;
        }
    }
    (out.len() == GROUPS * GROUP_LEN + 2 && out.starts_with("FF")).then_some(out)
}

pub fn hash(normalized: &str) -> String {
    crate::accounts::tokens::sha256_hex(normalized)
}

/// The part shown in listings: `FF-XXXXX`.
pub fn prefix(code: &str) -> String {
    code.chars().take(3 + GROUP_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_normalize_and_tolerate_typing() {
        let code = generate();
        assert_eq!(code.len(), 3 + GROUPS * GROUP_LEN + (GROUPS - 1));
        let n = normalize(&code).unwrap();
        assert_eq!(normalize(&code.to_lowercase().replace('-', " ")), Some(n.clone()));
        assert_eq!(hash(&n).len(), 64);
        assert_ne!(generate(), code);
        assert_eq!(prefix(&code).len(), 8);
        assert_eq!(normalize("FF-0OOOO-11ILL-22222-33333"), normalize("ff-00000-11111-22222-33333"));
        for bad in
            ["", "FF-", "XX-00000-11111-22222-33333", "FF-00000-11111-22222-3333U", "FF-00000-11111-22222-33333-4"]
        {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}
