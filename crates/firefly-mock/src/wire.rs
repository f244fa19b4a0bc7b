//! The JSON objects of OpenAI's chat completions API, field for field and in OpenAI's order
//! (`chat.completion`, `chat.completion.chunk`, `usage`), borrowed so that writing one costs
//! no more than the bytes it produces.

use serde::{Serialize, Serializer};

pub(crate) const FINGERPRINT: &str = "fp_f1ref1y0m0";
pub(crate) const SERVICE_TIER: &str = "default";

/// `usage`, with the detail objects OpenAI sends (all zero here).
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptDetails,
    pub completion_tokens_details: CompletionDetails,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct PromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

impl Usage {
    pub(crate) fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: PromptDetails::default(),
            completion_tokens_details: CompletionDetails::default(),
        }
    }
}

/// The `chat.completion` object.
#[derive(Serialize)]
pub(crate) struct Completion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    pub service_tier: &'static str,
    pub system_fingerprint: &'static str,
}

#[derive(Serialize)]
pub(crate) struct Choice<'a> {
    pub index: u32,
    pub message: Message<'a>,
    pub logprobs: (),
    pub finish_reason: &'static str,
}

#[derive(Serialize)]
pub(crate) struct Message<'a> {
    pub role: &'static str,
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolCall<'a>; 1]>,
    pub refusal: (),
    pub annotations: [(); 0],
}

#[derive(Serialize)]
pub(crate) struct ToolCall<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: Function<'a>,
}

#[derive(Serialize)]
pub(crate) struct Function<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}

/// One `chat.completion.chunk`: one choice's delta, or (the usage chunk) no choice at all.
#[derive(Serialize)]
pub(crate) struct Chunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub service_tier: &'static str,
    pub system_fingerprint: &'static str,
    pub choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "UsageField::is_omitted")]
    pub usage: UsageField,
}

/// `usage` on a chunk: absent unless `stream_options.include_usage`, then `null` on every
/// chunk but the last, which carries the totals.
#[derive(Clone, Copy)]
pub(crate) enum UsageField {
    Omitted,
    Null,
    Totals(Usage),
}

impl UsageField {
    fn is_omitted(&self) -> bool {
        matches!(self, UsageField::Omitted)
    }
}

impl Serialize for UsageField {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            UsageField::Totals(usage) => usage.serialize(serializer),
            UsageField::Omitted | UsageField::Null => serializer.serialize_none(),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    pub logprobs: (),
    pub finish_reason: Option<&'static str>,
}

/// The deltas OpenAI streams, in the order they come.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Delta<'a> {
    /// First chunk of a text answer: `{"role":"assistant","content":"","refusal":null}`.
    RoleText { role: &'static str, content: &'static str, refusal: () },
    /// First chunk of a tool call: the call's id and name, empty arguments.
    RoleTool { role: &'static str, content: (), tool_calls: [ToolCallHead<'a>; 1], refusal: () },
    /// One content token.
    Content { content: &'a str },
    /// One fragment of the tool call's arguments.
    ToolArguments { tool_calls: [ToolCallFragment<'a>; 1] },
    /// The last chunk of a choice, which carries only `finish_reason`.
    Empty {},
}

#[derive(Serialize)]
pub(crate) struct ToolCallHead<'a> {
    pub index: u32,
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: Function<'a>,
}

#[derive(Serialize)]
pub(crate) struct ToolCallFragment<'a> {
    pub index: u32,
    pub function: ArgumentsFragment<'a>,
}

#[derive(Serialize)]
pub(crate) struct ArgumentsFragment<'a> {
    pub arguments: &'a str,
}
