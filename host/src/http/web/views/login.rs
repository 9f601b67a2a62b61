//! Sign-in pages: the web UI's and npm's web login.

use maud::{html, Markup};

use super::{csrf, layout};
use crate::http::web::Ctx;

/// The username/password fields, with the error of a failed attempt.
fn credentials(error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        label for="name" { "User name" }
        input #name name="name" type="text" autocomplete="username" autocapitalize="none" required autofocus;
        label for="password" { "Password" }
        input #password name="password" type="password" autocomplete="current-password" required;
    }
}

/// `/-/web/signin`.
pub fn signin(ctx: &Ctx, error: Option<&str>) -> Markup {
    layout(
        ctx,
        "Sign in",
        html! {
            h1 { "Sign in" }
            form.card method="post" action=(ctx.url("/-/web/signin")) {
                (csrf(ctx))
                (credentials(error))
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// `/-/web/login/ID`: npm's web login, waiting for the person.
pub fn cli_login(ctx: &Ctx, id: &str, hostname: Option<&str>, register: bool, error: Option<&str>) -> Markup {
    let action = ctx.url(&format!("/-/web/login/{id}"));
    layout(
        ctx,
        "Log in to npm",
        html! {
            h1 { "Log in to npm" }
            p {
                "The npm command line is waiting for you to sign in"
                @if let Some(h) = hostname { " on " strong { (h) } }
                ". It will get a new access token for your account."
            }
            @if let (Some(person), None) = (&ctx.identity, error) {
                form.card method="post" action=(action) {
                    (csrf(ctx))
                    p { "You are signed in as " strong { (person.name) } "." }
                    button type="submit" { "Log in npm as " (person.name) }
                }
                p { "Or sign in as someone else:" }
            }
            form.card #signin-form method="post" action=(action) {
                (csrf(ctx))
                (credentials(error))
                button type="submit" { "Sign in and log in npm" }
            }
            @if register {
                h2 { "New here?" }
                form.card #register-form method="post" action=(action) {
                    (csrf(ctx))
                    label for="reg-name" { "User name" }
                    input #reg-name name="name" type="text" autocomplete="username" autocapitalize="none" required;
                    label for="reg-email" { "Email" }
                    input #reg-email name="email" type="email" autocomplete="email" required;
                    label for="reg-password" { "Password" }
                    input #reg-password name="password" type="password" autocomplete="new-password" required;
                    button type="submit" { "Create the account and log in npm" }
                }
            }
        },
    )
}

/// After npm's web login was approved.
pub fn cli_done(ctx: &Ctx, name: &str) -> Markup {
    layout(
        ctx,
        "npm is logged in",
        html! {
            h1 { "npm is logged in" }
            p.ok role="status" { "Signed in as " strong { (name) } ". You can close this page and go back to the terminal." }
        },
    )
}
