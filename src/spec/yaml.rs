//! YAML text → JSON value, with the place of every node.
//!
//! The loader reads saphyr's event stream itself rather than a loaded tree: a tree has already
//! resolved aliases and dropped duplicate keys, and a spec must reject both (a spec is read by
//! auditors; every value is written where it applies). Scalars resolve by the YAML 1.2 core
//! schema, so `on`, `yes` and `no` stay strings and dates stay text.
//!
//! Problems are collected, not returned at the first one: tabs in indentation, duplicate keys,
//! anchors, aliases, tags, several documents. A syntax error ends the parse (the parser cannot
//! resume after one), but the problems found before it are kept.

use std::borrow::Cow;

use saphyr::Scalar;
use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, StrInput, Tag};
use serde_json::{Map, Number, Value};

use super::span::{NodeSpan, SpanMap, TextIndex};

/// One thing wrong with the YAML text, at a place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong, in one sentence.
    pub message: String,
    /// JSON Pointer of the node it concerns (as far as the parse got).
    pub pointer: String,
    /// Where it is.
    pub span: NodeSpan,
    /// How to fix it.
    pub help: String,
}

/// The document, its spans, and every problem found. `value` is `None` when the text is not a
/// YAML document at all (syntax error, empty file).
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The document as JSON.
    pub value: Option<Value>,
    /// Where each node is.
    pub spans: SpanMap,
    /// Everything that keeps the text from being a usable spec.
    pub problems: Vec<Problem>,
}

/// Parses one YAML document into JSON, recording the place of every node.
pub fn parse(text: &str) -> Parsed {
    let index = TextIndex::new(text);
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        text,
        index: &index,
        spans: SpanMap::default(),
        problems: tab_problems(text, &index),
        depth: 0,
    };
    let tab_lines: Vec<usize> = builder.problems.iter().map(|p| p.span.line).collect();
    let value = builder.stream().ok().flatten();
    let Builder { spans, mut problems, .. } = builder;
    // A tab in the indentation usually also trips the parser; the tab problem says it better.
    problems.retain(|p| !(p.help == SYNTAX_HELP && tab_lines.contains(&p.span.line)));
    problems.sort_by_key(|p| (p.span.line, p.span.column));
    Parsed { value, spans, problems }
}

const SYNTAX_HELP: &str = "fix the YAML syntax at this place (an editor with the spec's schema \
                           shows such errors as you type)";

/// The parse cannot go on (a syntax error, already recorded).
struct Stop;

/// How deep collections may nest. A spec needs fewer than ten levels; the limit keeps a hostile
/// or broken file (thousands of nested block mappings, which the parser itself accepts) from
/// overflowing the stack of this recursive builder.
pub const MAX_DEPTH: usize = 64;

struct Builder<'a> {
    parser: Parser<'a, StrInput<'a>>,
    text: &'a str,
    index: &'a TextIndex,
    spans: SpanMap,
    problems: Vec<Problem>,
    /// Collections open around the current node.
    depth: usize,
}

impl<'a> Builder<'a> {
    fn stream(&mut self) -> Result<Option<Value>, Stop> {
        let mut value = None;
        let mut documents = 0;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(value),
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents == 2 {
                        self.problem(
                            span,
                            "",
                            "the file holds more than one YAML document",
                            "keep one spec per file: remove the second `---` and what follows",
                        );
                    }
                }
                event => {
                    let node = self.node(event, span, "", None)?;
                    if documents <= 1 {
                        value = Some(node);
                    }
                }
            }
        }
    }

    fn next(&mut self) -> Result<(Event<'a>, Span), Stop> {
        match self.parser.next_event() {
            Some(Ok(next)) => Ok(next),
            Some(Err(error)) => {
                self.syntax(&error);
                Err(Stop)
            }
            None => Err(Stop),
        }
    }

    fn node(
        &mut self,
        event: Event<'a>,
        span: Span,
        pointer: &str,
        key: Option<NodeSpan>,
    ) -> Result<Value, Stop> {
        let place = self.index.span(span);
        self.spans.insert_node(pointer, key, place);
        match event {
            Event::Alias(_) => {
                self.problem(
                    span,
                    pointer,
                    "YAML aliases (`*name`) are not allowed in a spec",
                    "write the value out where it applies, so each setting reads on its own",
                );
                Ok(Value::Null)
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.anchor_and_tag(span, pointer, anchor, tag.as_deref())?;
                Ok(self.scalar(text, style, tag.as_ref(), span, pointer))
            }
            Event::SequenceStart(anchor, tag) => {
                self.anchor_and_tag(span, pointer, anchor, tag.as_deref())?;
                self.enter(span, pointer)?;
                let (value, end) = self.sequence(pointer)?;
                self.depth -= 1;
                self.spans.insert_node(pointer, key, self.collection(place, end));
                Ok(value)
            }
            Event::MappingStart(anchor, tag) => {
                self.anchor_and_tag(span, pointer, anchor, tag.as_deref())?;
                self.enter(span, pointer)?;
                let (value, end) = self.mapping(pointer)?;
                self.depth -= 1;
                self.spans.insert_node(pointer, key, self.collection(place, end));
                Ok(value)
            }
            _ => {
                self.problem(span, pointer, "unexpected YAML structure", SYNTAX_HELP);
                Err(Stop)
            }
        }
    }

    /// Opens one more level of nesting, or stops the parse past [`MAX_DEPTH`].
    fn enter(&mut self, span: Span, pointer: &str) -> Result<(), Stop> {
        if self.depth >= MAX_DEPTH {
            self.problem(
                span,
                pointer,
                &format!("the YAML nests more than {MAX_DEPTH} levels deep"),
                "a spec nests a few levels only: check the indentation of this line",
            );
            return Err(Stop);
        }
        self.depth += 1;
        Ok(())
    }

    /// The span to show for a collection: all of it when it fits on its first line (a flow
    /// collection such as `[a, b]`), else its first line without a trailing comment.
    fn collection(&self, start: NodeSpan, end: Span) -> NodeSpan {
        let end = self.index.span(end);
        let closing = self.text[end.offset.min(self.text.len())..].starts_with([']', '}']);
        let stop = if end.line == start.line && closing {
            end.offset + 1
        } else {
            let line = &self.text[start.offset..];
            let line = line.split('\n').next().unwrap_or_default();
            let content = line.split(" #").next().unwrap_or_default().trim_end();
            start.offset + content.len()
        };
        NodeSpan { length: stop.saturating_sub(start.offset), ..start }
    }

    fn sequence(&mut self, pointer: &str) -> Result<(Value, Span), Stop> {
        let mut items = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::SequenceEnd) {
                return Ok((Value::Array(items), span));
            }
            let item = format!("{pointer}/{}", items.len());
            items.push(self.node(event, span, &item, None)?);
        }
    }

    fn mapping(&mut self, pointer: &str) -> Result<(Value, Span), Stop> {
        let mut map = Map::new();
        loop {
            let (event, key_span) = self.next()?;
            let key = match event {
                Event::MappingEnd => return Ok((Value::Object(map), key_span)),
                Event::Scalar(text, _, anchor, tag) => {
                    self.anchor_and_tag(key_span, pointer, anchor, tag.as_deref())?;
                    text.into_owned()
                }
                other => {
                    self.problem(
                        key_span,
                        pointer,
                        "a key must be plain text, not a list or a mapping",
                        "write the key as a single word or quoted string",
                    );
                    // Consume the complex key and its value so the rest still gets checked.
                    self.node(other, key_span, pointer, None)?;
                    let (event, span) = self.next()?;
                    self.node(event, span, pointer, None)?;
                    continue;
                }
            };
            let member = format!("{pointer}/{}", escape(&key));
            let first = self.spans.key_span(&member).filter(|_| map.contains_key(&key));
            let (event, span) = self.next()?;
            if let Some(first) = first {
                self.problem(
                    key_span,
                    &member,
                    &format!("duplicate key `{key}` (first written on line {})", first.line),
                    "keep one of the two entries; YAML would silently use only one of them",
                );
                // Parse the duplicate's value for its own problems, but keep the first entry's
                // spans and value.
                let saved = self.spans.clone();
                self.node(event, span, &member, None)?;
                self.spans = saved;
                continue;
            }
            let value = self.node(event, span, &member, Some(self.index.span(key_span)))?;
            map.insert(key, value);
        }
    }

    fn scalar(
        &mut self,
        text: Cow<'a, str>,
        style: ScalarStyle,
        tag: Option<&Cow<'a, Tag>>,
        span: Span,
        pointer: &str,
    ) -> Value {
        let Some(scalar) = Scalar::parse_from_cow_and_metadata(text.clone(), style, tag) else {
            self.problem(
                span,
                pointer,
                &format!("`{text}` does not match its YAML tag"),
                "remove the tag, or write a value of the tagged type",
            );
            return Value::Null;
        };
        match scalar {
            Scalar::Null => Value::Null,
            Scalar::Boolean(b) => Value::Bool(b),
            Scalar::Integer(i) => Value::Number(i.into()),
            Scalar::FloatingPoint(f) => match Number::from_f64(f.into_inner()) {
                Some(number) => Value::Number(number),
                None => {
                    self.problem(
                        span,
                        pointer,
                        &format!("`{text}` is not a finite number"),
                        "write a plain number, or quote the value to make it text",
                    );
                    Value::Null
                }
            },
            Scalar::String(s) => Value::String(s.into_owned()),
        }
    }

    fn anchor_and_tag(
        &mut self,
        span: Span,
        pointer: &str,
        anchor: usize,
        tag: Option<&Tag>,
    ) -> Result<(), Stop> {
        if anchor != 0 {
            self.problem(
                span,
                pointer,
                "YAML anchors (`&name`) are not allowed in a spec",
                "remove the anchor and write each value out where it applies",
            );
        }
        if let Some(tag) = tag.filter(|t| !t.is_yaml_core_schema()) {
            self.problem(
                span,
                pointer,
                &format!("the YAML tag `{}{}` is not allowed in a spec", tag.handle, tag.suffix),
                "remove the tag; the schema decides each value's type",
            );
        }
        Ok(())
    }

    fn syntax(&mut self, error: &ScanError) {
        let marker = error.marker();
        let place = self.index.at(marker.index(), marker.line(), marker.col());
        self.problems.push(Problem {
            message: format!("YAML syntax error: {}", error.info()),
            pointer: String::new(),
            span: place,
            help: SYNTAX_HELP.to_owned(),
        });
    }

    fn problem(&mut self, span: Span, pointer: &str, message: &str, help: &str) {
        self.problems.push(Problem {
            message: message.to_owned(),
            pointer: pointer.to_owned(),
            span: self.index.span(span),
            help: help.to_owned(),
        });
    }
}

/// Every line whose indentation contains a tab.
fn tab_problems(text: &str, index: &TextIndex) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let indent = &line[..line.len() - line.trim_start_matches([' ', '\t']).len()];
        let rest = &line[indent.len()..];
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if let Some(column) = indent.find('\t') {
            problems.push(Problem {
                message: "a tab is used for indentation; YAML indents with spaces only".to_owned(),
                pointer: String::new(),
                span: index.line_column(number + 1, column + 1, 1),
                help: "replace the tab with spaces".to_owned(),
            });
        }
    }
    problems
}

/// Escapes a key for a JSON Pointer (RFC 6901).
pub fn escape(key: &str) -> Cow<'_, str> {
    if key.contains(['~', '/']) {
        Cow::Owned(key.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(key)
    }
}
