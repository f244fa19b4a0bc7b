//! Measuring prompts while they are parsed, without building them: the deterministic token
//! counts of the crate documentation come from these character counts.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

/// Characters (Unicode scalar values) of a message's `content`: a string, an array of content
/// parts (the `text` of each part counts, images and audio do not), or null.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ContentChars(pub u64);

/// The `messages` array, reduced to its total content characters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MessagesChars {
    pub messages: u64,
    pub chars: u64,
}

/// The `input` of an embeddings request: strings are measured in characters, token arrays in
/// tokens.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EmbeddingInput {
    pub inputs: u64,
    pub chars: u64,
    pub token_ids: u64,
}

pub(crate) fn chars(s: &str) -> u64 {
    s.chars().count() as u64
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageSeen {
    #[serde(default)]
    content: ContentChars,
}

impl<'de> Deserialize<'de> for ContentChars {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ContentChars;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, an array of content parts, or null")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ContentChars, E> {
                Ok(ContentChars(chars(s)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ContentChars, E> {
                Ok(ContentChars(0))
            }
            fn visit_none<E: de::Error>(self) -> Result<ContentChars, E> {
                Ok(ContentChars(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ContentChars, A::Error> {
                let mut total = 0;
                while let Some(part) = seq.next_element::<Part<'de>>()? {
                    total += part.text.as_deref().map_or(0, chars);
                }
                Ok(ContentChars(total))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for MessagesChars {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MessagesChars;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of messages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MessagesChars, A::Error> {
                let mut seen = MessagesChars::default();
                while let Some(message) = seq.next_element::<MessageSeen>()? {
                    seen.messages += 1;
                    seen.chars += message.content.0;
                }
                Ok(seen)
            }
        }
        deserializer.deserialize_seq(V)
    }
}

/// One element of an `input` array: a string, a token id, or an array of token ids.
enum InputItem {
    Text(u64),
    TokenId,
    Tokens(u64),
}

impl<'de> Deserialize<'de> for InputItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = InputItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a token id or an array of token ids")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<InputItem, E> {
                Ok(InputItem::Text(chars(s)))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<InputItem, E> {
                Ok(InputItem::TokenId)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InputItem, A::Error> {
                let mut tokens = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    tokens += 1;
                }
                Ok(InputItem::Tokens(tokens))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for EmbeddingInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EmbeddingInput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, an array of strings, or token arrays")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<EmbeddingInput, E> {
                Ok(EmbeddingInput { inputs: 1, chars: chars(s), token_ids: 0 })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EmbeddingInput, A::Error> {
                let mut input = EmbeddingInput::default();
                let mut flat_tokens = false;
                while let Some(item) = seq.next_element::<InputItem>()? {
                    match item {
                        InputItem::Text(n) => {
                            input.inputs += 1;
                            input.chars += n;
                        }
                        InputItem::Tokens(n) => {
                            input.inputs += 1;
                            input.token_ids += n;
                        }
                        // `[1, 2, 3]` is one input of three tokens.
                        InputItem::TokenId => {
                            flat_tokens = true;
                            input.token_ids += 1;
                        }
                    }
                }
                if flat_tokens {
                    input.inputs += 1;
                }
                Ok(input)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Characters of Anthropic content: a string, or an array of blocks whose `text` counts, as
/// does the `content` of a `tool_result` block (a string or blocks again). Images, documents,
/// tool inputs and thinking count 0.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BlocksChars(pub u64);

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    content: Option<BlocksChars>,
}

impl<'de> Deserialize<'de> for BlocksChars {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BlocksChars;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content blocks")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<BlocksChars, E> {
                Ok(BlocksChars(chars(s)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<BlocksChars, E> {
                Ok(BlocksChars(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BlocksChars, A::Error> {
                let mut total = 0;
                while let Some(block) = seq.next_element::<Block<'de>>()? {
                    total += block.text.as_deref().map_or(0, chars) + block.content.map_or(0, |c| c.0);
                }
                Ok(BlocksChars(total))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Anthropic's `messages`, reduced to their count and content characters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AnthropicMessages {
    pub messages: u64,
    pub chars: u64,
}

#[derive(Deserialize)]
struct AnthropicMessage {
    #[serde(default)]
    content: BlocksChars,
}

impl<'de> Deserialize<'de> for AnthropicMessages {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnthropicMessages;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of messages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnthropicMessages, A::Error> {
                let mut seen = AnthropicMessages::default();
                while let Some(message) = seq.next_element::<AnthropicMessage>()? {
                    seen.messages += 1;
                    seen.chars += message.content.0;
                }
                Ok(seen)
            }
        }
        deserializer.deserialize_seq(V)
    }
}
