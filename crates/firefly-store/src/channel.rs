//! Upstream channels: where the relay sends requests. Provider API keys are stored
//! only encrypted (the store never sees them in the clear) with short hints for people.

use firefly_core::time::Millis;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelStatus {
    Enabled,
    /// Turned off by an administrator.
    Disabled,
    /// Turned off by the relay (the upstream refused its key or ran out of balance);
    /// a periodic probe turns it back on.
    AutoDisabled,
}

impl ChannelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelStatus::Enabled => "enabled",
            ChannelStatus::Disabled => "disabled",
            ChannelStatus::AutoDisabled => "auto_disabled",
        }
    }
    pub fn parse(s: &str) -> Option<ChannelStatus> {
        Some(match s {
            "enabled" => ChannelStatus::Enabled,
            "disabled" => ChannelStatus::Disabled,
            "auto_disabled" => ChannelStatus::AutoDisabled,
            _ => return None,
        })
    }
}

/// A channel's settings, as created and as replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    pub name: String,
    /// The adapter: `openai` (any OpenAI-compatible base URL), `azure`, ...
    pub provider: String,
    pub base_url: String,
    /// Azure's `api-version`.
    pub api_version: Option<String>,
    /// The provider keys, encrypted (AES-256-GCM under the master key), as one text.
    pub keys_ciphertext: String,
    /// What people see of each key: `sk-…abcd`.
    pub key_hints: Vec<String>,
    /// Models this channel serves (the names clients ask for).
    pub models: Vec<String>,
    /// Client model name → upstream model name, where they differ.
    pub model_map: BTreeMap<String, String>,
    /// Higher tiers are tried first.
    pub priority: i64,
    /// Share of traffic inside a tier.
    pub weight: i64,
    pub rpm_limit: Option<i64>,
    pub status: ChannelStatus,
    pub status_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: i64,
    pub spec: ChannelSpec,
    pub created_at: Millis,
    pub updated_at: Millis,
}

pub fn encode_map(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
}

pub fn decode_map(text: &str) -> Result<BTreeMap<String, String>, crate::StoreError> {
    serde_json::from_str(text).map_err(|e| crate::StoreError::Corrupt(format!("model map: {e}")))
}
