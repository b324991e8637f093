//! The promotion prompt of an org, role or team record: the instruction a
//! promotion step follows when it decides which memories held by the
//! members of that org, role or team become shared knowledge at that level.
//!
//! Prompts come from a [`PromptGenerator`]. Without an LLM configured the
//! generator is [`TemplateGenerator`], a deterministic template over the
//! record's name and focus; with one it is [`LlmGenerator`], which asks the
//! model to write the prompt (the template serves as its example and as the
//! answer when the model cannot be used) and meters its tokens per org.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// Bumped whenever the template's wording changes, so that `prompt_meta`
/// tells which records carry an older text.
pub const TEMPLATE_VERSION: u32 = 1;

/// Which kind of record a prompt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Org,
    Role,
    Team,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Org => "org",
            Level::Role => "role",
            Level::Team => "team",
        }
    }
}

/// What a prompt is generated from.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub level: Level,
    pub org_id: &'a str,
    pub name: &'a str,
    pub focus: &'a str,
}

/// How a record's prompt was made; rendered as the record's `prompt_meta`,
/// e.g. `{"source": "template", "template_version": 1, "generated_at": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum PromptMeta {
    /// Generated; regenerated whenever the name or focus changes.
    Template {
        template_version: u32,
        generated_at: String,
        /// Why the configured LLM was not used, when it was not: a summary
        /// (the provider's own message is logged, never shown to a tenant).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        llm_error: Option<String>,
    },
    /// Written by the user through PATCH; kept until `regenerate-prompt`.
    User { edited_at: String },
    /// Written by a language model; regenerated like a template.
    Llm { model: String, generated_at: String, prompt_tokens: u64, completion_tokens: u64 },
}

impl PromptMeta {
    pub fn is_user(&self) -> bool {
        matches!(self, PromptMeta::User { .. })
    }

    /// Who wrote the prompt: the `source` the record shows.
    pub fn source(&self) -> &'static str {
        match self {
            PromptMeta::Template { .. } => "template",
            PromptMeta::User { .. } => "user",
            PromptMeta::Llm { .. } => "llm",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Generated {
    pub prompt: String,
    pub meta: PromptMeta,
}

/// Writes promotion prompts. Boxed futures keep the trait object-safe, so
/// that an LLM client (which has to await a network call and may fail) can
/// stand in for the template.
pub trait PromptGenerator: Send + Sync {
    fn generate<'a>(&'a self, subject: Subject<'a>) -> BoxFuture<'a, Result<Generated, String>>;

    /// Whether generating spends the org's `llm_tokens`.
    fn uses_llm(&self) -> bool {
        false
    }
}

/// The generator used when no LLM is configured.
pub struct TemplateGenerator;

impl PromptGenerator for TemplateGenerator {
    fn generate<'a>(&'a self, subject: Subject<'a>) -> BoxFuture<'a, Result<Generated, String>> {
        let generated = Generated {
            prompt: template(&subject),
            meta: PromptMeta::Template {
                template_version: TEMPLATE_VERSION,
                generated_at: memsy_core::time::now_rfc3339(),
                llm_error: None,
            },
        };
        Box::pin(async move { Ok(generated) })
    }
}

/// Asks an OpenAI-compatible model to write the prompt, counting its tokens
/// as the org's `llm_tokens`. When the model cannot be used (down after its
/// retries, refusing, answering nonsense) the record still gets a prompt:
/// the template's, with `prompt_meta` saying so and why.
pub struct LlmGenerator {
    client: memsy_llm::ChatClient,
    meter: memsy_usage::Meter,
}

impl LlmGenerator {
    pub fn new(client: memsy_llm::ChatClient, meter: memsy_usage::Meter) -> Self {
        Self { client, meter }
    }

    async fn ask(&self, s: &Subject<'_>) -> Result<Generated, memsy_llm::LlmError> {
        let system = "You write the instruction that a memory service follows when it decides which memories held \
                      by individual people become shared knowledge of their organisation, role or team. Answer \
                      with JSON: {\"prompt\": \"...\"}. The prompt is at most 1500 characters, names the group, \
                      follows the group's focus, and says what to promote and what never to promote (personal \
                      details of one person, secrets, short-lived details).";
        let user = format!(
            "Level: {}\nOrganisation: {}\nName: {}\nFocus: {}\n\nAn acceptable generic prompt, to improve on:\n{}",
            s.level.as_str(),
            s.org_id,
            s.name,
            s.focus,
            template(s)
        );
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"prompt": {"type": "string"}},
            "required": ["prompt"],
            "additionalProperties": false,
        });
        let answer = self.client.complete_json(system, &user, "promotion_prompt", &schema).await?;
        let tokens = answer.usage.total();
        if tokens > 0 {
            let now = chrono::Utc::now();
            if let Err(e) = self.meter.add(s.org_id, None, memsy_usage::Dimension::LlmTokens, tokens, now).await {
                tracing::warn!(org_id = s.org_id, error = %e, "counting llm_tokens failed");
            }
        }
        let prompt = answer.value["prompt"].as_str().map(str::trim).unwrap_or_default().to_string();
        if prompt.is_empty() || prompt.chars().count() > super::MAX_PROMPT {
            return Err(memsy_llm::LlmError::Invalid(format!(
                "prompt is empty or longer than {} characters",
                super::MAX_PROMPT
            )));
        }
        Ok(Generated {
            prompt,
            meta: PromptMeta::Llm {
                model: answer.model,
                generated_at: memsy_core::time::now_rfc3339(),
                prompt_tokens: answer.usage.prompt_tokens,
                completion_tokens: answer.usage.completion_tokens,
            },
        })
    }
}

impl PromptGenerator for LlmGenerator {
    fn uses_llm(&self) -> bool {
        true
    }

    fn generate<'a>(&'a self, subject: Subject<'a>) -> BoxFuture<'a, Result<Generated, String>> {
        Box::pin(async move {
            match self.ask(&subject).await {
                Ok(g) => Ok(g),
                Err(e) => {
                    tracing::warn!(org_id = subject.org_id, error = %e, "LLM prompt generation failed; using the template");
                    Ok(Generated {
                        prompt: template(&subject),
                        meta: PromptMeta::Template {
                            template_version: TEMPLATE_VERSION,
                            generated_at: memsy_core::time::now_rfc3339(),
                            llm_error: Some(e.summary().to_string()),
                        },
                    })
                }
            }
        })
    }
}

/// The deterministic promotion prompt for `s`: the same subject always gives
/// the same text. It names the record and quotes its focus, because the
/// focus is the only thing that tells the promotion step what matters here.
pub fn template(s: &Subject<'_>) -> String {
    let (who, members, level, noun) = match s.level {
        Level::Org => (
            format!("the organisation \"{}\"", s.name),
            "members of this organisation",
            "organisation-wide",
            "organisation",
        ),
        Level::Role => (
            format!("the role \"{}\" in organisation \"{}\"", s.name, s.org_id),
            "people who hold this role",
            "role-level",
            "role",
        ),
        Level::Team => (
            format!("the team \"{}\" in organisation \"{}\"", s.name, s.org_id),
            "members of this team",
            "team-level",
            "team",
        ),
    };
    format!(
        "You decide which memories are promoted to shared {level} knowledge for {who}.\n\
         \n\
         Focus of this {noun}: {focus}\n\
         \n\
         You are shown memories held by individual {members}. Promote a memory only when it serves this \
         focus and would help all {members}: durable facts, decisions, conventions, procedures and lessons \
         learned. Do not promote personal details or preferences of one person, small talk, short-lived or \
         one-off details, secrets or credentials, or anything that is only true for the person it came from. \
         When memories conflict, keep the most recent one. Write each promoted memory as a short, \
         self-contained statement that does not name the person it came from.",
        focus = s.focus,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(level: Level) -> Subject<'static> {
        Subject { level, org_id: "acme", name: "Support engineer", focus: "Customer escalations and refunds" }
    }

    #[test]
    fn template_names_the_record_and_its_focus() {
        for level in [Level::Org, Level::Role, Level::Team] {
            let p = template(&subject(level));
            assert!(p.contains("\"Support engineer\""), "{p}");
            assert!(p.contains("Customer escalations and refunds"), "{p}");
        }
        assert!(template(&subject(Level::Role)).contains("role-level knowledge"));
        assert!(template(&subject(Level::Team)).contains("members of this team"));
        assert!(template(&subject(Level::Org)).contains("organisation-wide"));
        assert!(template(&subject(Level::Team)).contains("organisation \"acme\""));
    }

    #[test]
    fn template_is_deterministic_and_follows_its_input() {
        let a = template(&subject(Level::Role));
        assert_eq!(a, template(&subject(Level::Role)));
        let other = Subject { focus: "Onboarding", ..subject(Level::Role) };
        assert_ne!(a, template(&other));
    }

    #[test]
    fn template_fits_the_prompt_limit_for_the_longest_input() {
        let (name, focus) = ("n".repeat(super::super::MAX_NAME), "f".repeat(super::super::MAX_FOCUS));
        let s = Subject { level: Level::Team, org_id: &"o".repeat(256), name: &name, focus: &focus };
        assert!(template(&s).chars().count() <= super::super::MAX_PROMPT);
    }

    #[tokio::test]
    async fn template_generator_reports_its_source() {
        let g = TemplateGenerator.generate(subject(Level::Org)).await.unwrap();
        assert_eq!(g.prompt, template(&subject(Level::Org)));
        let meta = serde_json::to_value(&g.meta).unwrap();
        assert_eq!(meta["source"], "template");
        assert_eq!(g.meta.source(), "template");
        assert_eq!(meta["template_version"], TEMPLATE_VERSION);
        assert!(memsy_core::time::parse_ts(meta["generated_at"].as_str().unwrap()).is_some());
        assert!(!g.meta.is_user());
        let user = serde_json::to_value(PromptMeta::User { edited_at: "t".into() }).unwrap();
        assert_eq!(user, serde_json::json!({"source": "user", "edited_at": "t"}));
        let llm =
            PromptMeta::Llm { model: "m".into(), generated_at: "t".into(), prompt_tokens: 1, completion_tokens: 2 };
        assert_eq!(serde_json::to_value(&llm).unwrap()["source"], llm.source());
    }
}
