//! Parsing of the macro's own arguments: `#[pool_item(..)]` and
//! `#[messaging(..)]`.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{parenthesized, Attribute, Ident, LitStr, Path, Token, Type};

/// The arguments of `#[pool_item(..)]`.
#[derive(Default)]
pub(crate) struct ItemArgs {
    /// `init = Type`: the item's `PoolItem::Init`.
    pub(crate) init: Option<Type>,
    /// `thread_state = Type`: the item's `PoolItem::ThreadState`.
    pub(crate) thread_state: Option<Type>,
    /// `derive(..)`: what the generated types derive (`None`: the default set).
    pub(crate) derives: Option<Vec<Path>>,
    /// `api = Name`: the name of the generated request enum.
    pub(crate) api: Option<Ident>,
    /// `response = Name`: the name of the generated response enum.
    pub(crate) response: Option<Ident>,
    /// `init_request = Name`: the name of the generated add request.
    pub(crate) init_request: Option<Ident>,
    /// `crate = path`: where shardpool is, for a crate that reaches it
    /// through a re-export rather than a dependency of its own.
    pub(crate) krate: Option<Path>,
}

impl Parse for ItemArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = ItemArgs::default();
        while !input.is_empty() {
            if input.peek(Token![crate]) {
                let key: Token![crate] = input.parse()?;
                if args.krate.is_some() {
                    return Err(syn::Error::new(key.span, "`crate` is given twice"));
                }
                input.parse::<Token![=]>()?;
                args.krate = Some(input.parse()?);
                if input.is_empty() {
                    break;
                }
                input.parse::<Token![,]>()?;
                continue;
            }
            let key: Ident = input.parse()?;
            match key.to_string().as_str() {
                // `Init = "Type"` is messaging_thread_pool's spelling; it is
                // accepted so that ported code compiles unchanged.
                "init" | "Init" => {
                    if args.init.is_some() {
                        return Err(syn::Error::new(key.span(), "`init` is given twice"));
                    }
                    input.parse::<Token![=]>()?;
                    args.init = Some(parse_type_or_string(input)?);
                }
                "thread_state" => {
                    if args.thread_state.is_some() {
                        return Err(syn::Error::new(key.span(), "`thread_state` is given twice"));
                    }
                    input.parse::<Token![=]>()?;
                    args.thread_state = Some(parse_type_or_string(input)?);
                }
                "derive" => {
                    if args.derives.is_some() {
                        return Err(syn::Error::new(key.span(), "`derive` is given twice"));
                    }
                    let content;
                    parenthesized!(content in input);
                    let paths = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
                    args.derives = Some(paths.into_iter().collect());
                }
                "api" | "response" | "init_request" => {
                    let slot = match key.to_string().as_str() {
                        "api" => &mut args.api,
                        "response" => &mut args.response,
                        _ => &mut args.init_request,
                    };
                    if slot.is_some() {
                        return Err(syn::Error::new(key.span(), format!("`{key}` is given twice")));
                    }
                    input.parse::<Token![=]>()?;
                    *slot = Some(input.parse()?);
                }
                "Shutdown" | "shutdown" => {
                    return Err(syn::Error::new(
                        key.span(),
                        "`Shutdown = \"method\"` is messaging_thread_pool's; in shardpool, mark a method \
                         `#[hook] fn on_shutdown(&mut self, state: &mut Self::ThreadState)` instead",
                    ));
                }
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown #[pool_item] argument `{key}`; expected `init = Type`, \
                             `thread_state = Type`, `derive(Trait, ..)`, a name for a generated \
                             type (`api = Name`, `response = Name`, `init_request = Name`), or \
                             `crate = path::to::shardpool`"
                        ),
                    ));
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// A type, written plainly or (as messaging_thread_pool had it) in a string.
fn parse_type_or_string(input: ParseStream) -> syn::Result<Type> {
    if input.peek(LitStr) {
        input.parse::<LitStr>()?.parse()
    } else {
        input.parse()
    }
}

/// The arguments of `#[messaging(Request, Response)]`: the names of the
/// request and response types to generate.
pub(crate) struct MessagingArgs {
    pub(crate) request: Ident,
    pub(crate) response: Ident,
}

impl MessagingArgs {
    /// Parses the arguments of a `#[messaging(..)]` attribute; a wrong
    /// count is reported on the whole attribute.
    pub(crate) fn from_attr(attr: &Attribute) -> syn::Result<Self> {
        let names = attr.parse_args_with(Punctuated::<Ident, Token![,]>::parse_terminated);
        let wrong = || {
            syn::Error::new_spanned(
                &attr.meta,
                "expected the names of the request and response types to generate: \
                 `#[messaging(FooRequest, FooResponse)]`",
            )
        };
        let names = match names {
            Ok(names) if names.len() == 2 => names,
            _ => return Err(wrong()),
        };
        let mut names = names.into_iter();
        match (names.next(), names.next()) {
            (Some(request), Some(response)) => Ok(MessagingArgs { request, response }),
            _ => Err(wrong()),
        }
    }
}
