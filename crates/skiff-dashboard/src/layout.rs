//! The frame of every page: head, navigation, and the main column.

use maud::{html, Markup, DOCTYPE};

/// The section of the dashboard a page belongs to, highlighted in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Functions,
    Calls,
}

/// A whole page.
pub(crate) fn page(title: &str, section: Section, body: Markup) -> Markup {
    let current = |s: Section| if s == section { "current" } else { "" };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · skiff" }
                link rel="stylesheet" href=(crate::STYLE_PATH);
                script src=(crate::SCRIPT_PATH) defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "skiff" }
                    nav {
                        a class=(current(Section::Functions)) href="/" { "Functions" }
                        a class=(current(Section::Calls)) href="/calls" { "Calls" }
                        a href="/v1/openapi.json" { "API" }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A status word as a badge, coloured by its class.
pub(crate) fn badge(word: &str) -> Markup {
    html! { span class=(format!("badge {word}")) { (word) } }
}
