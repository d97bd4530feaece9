//! What `#[pool_item]` generates from an impl block.

use crate::args::{ItemArgs, MessagingArgs};
use crate::derive::{conditional_impls, Shape};
use crate::generics::{mentioned, param_names, subset};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use std::collections::HashMap;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    Attribute, FnArg, GenericParam, Generics, Ident, ImplItem, ImplItemFn, ItemImpl, Meta, ReturnType,
    Signature, Type, Visibility,
};

/// The hooks of `PoolItem` that a `#[hook]` method may provide.
const HOOKS: [&str; 5] = ["placement", "new_thread_state", "pre_process", "post_process", "on_shutdown"];

/// Compile errors gathered while reading the impl block, reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn check(&mut self, result: syn::Result<()>) {
        if let Err(e) = result {
            self.push(e);
        }
    }
}

/// One `#[messaging]` method: what it is called, what it takes and returns,
/// and the names of the types generated for it.
struct Endpoint {
    method: Ident,
    variant: Ident,
    request: Ident,
    response: Ident,
    args: Vec<Type>,
    result: Type,
    /// The method's `#[cfg(..)]` attributes, repeated on everything
    /// generated for it.
    cfgs: Vec<Attribute>,
}

/// How `new` is called from `PoolItem::new_pool_item`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arity {
    /// `new(id)`: the item has no init data (`Init = ()`).
    Id,
    /// `new(init)`: with `init = Type`, the init data alone.
    Init,
    /// `new(id, init)`.
    IdInit,
}

/// What the constructor takes and whether it can fail.
struct Constructor {
    arity: Arity,
    /// The init type, unless the constructor takes the id alone.
    init: Option<Type>,
    fallible: bool,
    /// The type of the id parameter, when `new` takes one.
    id_ty: Option<Type>,
    /// The constructor's return type.
    output_ty: Type,
    /// Where the constructor's return type is written, to report type errors
    /// of the generated call there.
    output: Span,
    /// `new` is missing or malformed (already reported): `new_pool_item` is
    /// generated as a stub, only so that the rest of the crate type-checks
    /// against the item instead of failing on every use of it.
    broken: bool,
}

/// Expands `#[pool_item(args)] impl .. { .. }`.
pub(crate) fn expand(args: ItemArgs, mut input: ItemImpl) -> TokenStream {
    let mut errors = Errors::default();
    if let Some((_, path, _)) = &input.trait_ {
        let e = syn::Error::new_spanned(
            path,
            "#[pool_item] goes on the item's own `impl Item { .. }` block, not on a trait impl",
        );
        let e = e.to_compile_error();
        return quote! { #input #e };
    }
    for lifetime in input.generics.lifetimes() {
        errors.push(syn::Error::new_spanned(
            lifetime,
            "a pool item lives on its worker for as long as the pool does, so it cannot borrow: \
             lifetime parameters are not supported",
        ));
    }
    let name = match &*input.self_ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    };
    let name = name.unwrap_or_else(|| {
        errors.push(syn::Error::new_spanned(
            &input.self_ty,
            "#[pool_item] expects an impl block of a named type: `impl MyItem { .. }`",
        ));
        Ident::new("Item", Span::call_site())
    });

    // Lifetime parameters or a nameless self type: nothing sensible can be
    // generated.
    if let Some(e) = errors.0.take() {
        let e = e.to_compile_error();
        return quote! { #input #e };
    }

    // Sort the methods: endpoints stay (callable directly too), hooks move
    // into the `PoolItem` impl, and `new` is remembered.
    let mut endpoints = Vec::new();
    let mut hooks = Vec::new();
    let mut new_sig = None;
    let mut kept = Vec::new();
    for item in std::mem::take(&mut input.items) {
        let ImplItem::Fn(mut f) = item else {
            kept.push(item);
            continue;
        };
        let messaging = take_attrs(&mut f.attrs, "messaging");
        let hook = take_attrs(&mut f.attrs, "hook");
        for extra in messaging.iter().skip(1) {
            errors.push(syn::Error::new_spanned(extra, "a method takes at most one #[messaging]"));
        }
        for extra in hook.iter().skip(1) {
            errors.push(syn::Error::new_spanned(extra, "a method takes at most one #[hook]"));
        }
        match (messaging.first(), hook.first()) {
            (Some(_), Some(h)) => {
                errors.push(syn::Error::new_spanned(
                    h,
                    "a method is either a #[messaging] endpoint or a #[hook], not both",
                ));
                kept.push(ImplItem::Fn(f));
            }
            (Some(attr), None) => {
                match endpoint(&f.sig, attr) {
                    Ok(mut e) => {
                        e.cfgs = f.attrs.iter().filter(|a| a.path().is_ident("cfg")).cloned().collect();
                        endpoints.push(e)
                    }
                    Err(e) => errors.push(e),
                }
                kept.push(ImplItem::Fn(f));
            }
            (None, Some(attr)) if f.sig.ident == "new" => {
                // Still the constructor: one error, not a second one for a
                // missing `new`.
                errors.push(syn::Error::new_spanned(
                    attr,
                    "`new` is the item's constructor, not a hook: remove #[hook]",
                ));
                new_sig = Some(f.sig.clone());
                kept.push(ImplItem::Fn(f));
            }
            (None, Some(attr)) => match check_hook(&f, attr) {
                Ok(()) => {
                    f.vis = Visibility::Inherited;
                    hooks.push(f);
                }
                Err(e) => {
                    errors.push(e);
                    kept.push(ImplItem::Fn(f));
                }
            },
            (None, None) => {
                if f.sig.ident == "new" {
                    new_sig = Some(f.sig.clone());
                }
                kept.push(ImplItem::Fn(f));
            }
        }
    }
    input.items = kept;

    let ctor = match &new_sig {
        Some(sig) => match constructor(sig, args.init.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                errors.push(e);
                broken_constructor(Some(sig), args.init.as_ref())
            }
        },
        None => {
            errors.push(syn::Error::new_spanned(
                &input.self_ty,
                "#[pool_item] needs the item's constructor in this impl block: \
                 `fn new(id: u64) -> Self` or `fn new(id: u64, init: MyInit) -> Self` \
                 (either may return `Result<Self, E>`)",
            ));
            broken_constructor(None, args.init.as_ref())
        }
    };

    // The generated names: given in the arguments, or made from the item's
    // name. A made name carries the span of what it comes from (the item's
    // name, or `new`), so that a clash with a type of the module is
    // reported there; a given one, its own.
    let mut api = args.api.clone().unwrap_or_else(|| format_ident!("{}Api", name));
    let mut response_enum = args.response.clone().unwrap_or_else(|| format_ident!("{}Response", name));
    let mut init_struct = args.init_request.clone().unwrap_or_else(|| {
        let span = new_sig.as_ref().map_or(name.span(), |sig| sig.ident.span());
        format_ident!("{}Init", name, span = span)
    });
    let generates_init = ctor.arity == Arity::Id;
    if let (Some(given), false, false) = (&args.init_request, generates_init, ctor.broken) {
        errors.push(syn::Error::new_spanned(
            given,
            "`init_request` names the `ItemInit(id)` request, which is generated only for \
             `fn new(id: u64)`; an item created from init data is added with `AddRequest::new(id, init)`",
        ));
    }
    check_names(
        &mut errors,
        &name,
        &mut api,
        &mut response_enum,
        generates_init.then_some(&mut init_struct),
        &mut endpoints,
    );

    // Whatever was wrong has been reported; what is right is still
    // generated, so that the rest of the crate does not fail on every use
    // of the item and its types as well.
    let errors = errors.0.map(|e| e.to_compile_error());
    let bounded = with_message_bounds(&input.generics, &endpoints, &ctor, args.thread_state.as_ref());
    let gen = Gen {
        krate: args.krate.as_ref().map_or_else(crate_path, |p| quote!(#p)),
        self_ty: &input.self_ty,
        name: &name,
        generics: &input.generics,
        bounded: &bounded,
        api: &api,
        response_enum: &response_enum,
        derives: Derives::of(&args),
    };
    let mut out = TokenStream::new();
    for e in &endpoints {
        out.extend(gen.endpoint(e));
    }
    out.extend(gen.enums(&endpoints));
    if generates_init {
        out.extend(gen.init_request(&init_struct));
    }
    let thread_state = args.thread_state.map_or_else(|| quote!(()), |t| quote!(#t));
    out.extend(gen.pool_item(&endpoints, &ctor, &thread_state, &hooks));
    quote! { #input #out #errors }
}

/// The item's generics, plus the bounds `PoolItem` needs of them, for the
/// generated impls. A generic impl block need not spell them out (and one
/// that does not gets no error at all, rather than one per generated impl):
/// every type parameter is `'static` (the item outlives any borrow), and
/// every message type (an argument, a result, the init data) is
/// `Send + 'static`, as it crosses threads; a parameter that never travels
/// in a message need not be `Send`. The thread state, if it mentions a
/// parameter, gets `Default + 'static`.
///
/// A message type that mentions no parameter gets the bound too, under a
/// `for<'__a>` binder that keeps a false one (`Rc<String>: Send`) from being
/// an error by itself: the impls then do not apply, and the one error is
/// the `Send` check at the argument's own span (`Gen::endpoint`).
fn with_message_bounds(
    generics: &Generics,
    endpoints: &[Endpoint],
    ctor: &Constructor,
    thread_state: Option<&Type>,
) -> Generics {
    let params = param_names(generics);
    let mentions = |t: &Type| !mentioned(&params, |f| f.visit_type(t)).is_empty();
    let mut out = generics.clone();
    let clause = out.make_where_clause();
    for p in generics.type_params() {
        let ident = &p.ident;
        clause.predicates.push(syn::parse_quote!(#ident: 'static));
    }
    let messages = endpoints.iter().flat_map(|e| e.args.iter().chain([&e.result])).chain(ctor.init.as_ref());
    for t in messages {
        clause.predicates.push(if mentions(t) {
            syn::parse_quote!(#t: ::core::marker::Send + 'static)
        } else {
            syn::parse_quote!(for<'__a> #t: ::core::marker::Send + 'static)
        });
    }
    if let Some(t) = thread_state.filter(|t| mentions(t)) {
        clause.predicates.push(syn::parse_quote!(#t: ::core::default::Default + 'static));
    }
    if clause.predicates.is_empty() {
        out.where_clause = None;
    }
    out
}

/// Removes and returns the attributes named `name`.
fn take_attrs(attrs: &mut Vec<Attribute>, name: &str) -> Vec<Attribute> {
    let (taken, rest) = std::mem::take(attrs).into_iter().partition(|a| a.path().is_ident(name));
    *attrs = rest;
    taken
}

/// Checks a `#[hook]` method: a bare attribute on a method named for a hook.
fn check_hook(f: &ImplItemFn, attr: &Attribute) -> syn::Result<()> {
    if !matches!(attr.meta, Meta::Path(_)) {
        return Err(syn::Error::new_spanned(attr, "#[hook] takes no arguments"));
    }
    let name = f.sig.ident.to_string();
    if HOOKS.contains(&name.as_str()) {
        return Ok(());
    }
    let message = match name.as_str() {
        "process_message" => {
            "`process_message` is generated from the #[messaging] methods and cannot be a hook".to_owned()
        }
        "new_pool_item" => "`new_pool_item` is generated from `fn new` and cannot be a hook".to_owned(),
        _ => format!(
            "`{name}` is not a hook of `PoolItem`; the hooks are `placement`, `new_thread_state`, \
             `pre_process`, `post_process` and `on_shutdown`"
        ),
    };
    Err(syn::Error::new_spanned(&f.sig.ident, message))
}

/// Reads a `#[messaging(Request, Response)]` method.
fn endpoint(sig: &Signature, attr: &Attribute) -> syn::Result<Endpoint> {
    let MessagingArgs { request, response } = MessagingArgs::from_attr(attr)?;
    let mut errors = Errors::default();
    if let Some(a) = &sig.asyncness {
        errors.push(syn::Error::new_spanned(a, "a #[messaging] method cannot be `async`"));
    }
    if let Some(u) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            u,
            "a #[messaging] method cannot be `unsafe`: the pool calls it for any request, with no \
             caller to uphold its contract; make it safe and check its preconditions inside",
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a #[messaging] method cannot have generic parameters: its request type would need them too",
        ));
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if matches!(*r.ty, Type::Reference(_)) => {}
        Some(FnArg::Receiver(r)) => errors.push(syn::Error::new_spanned(
            r,
            "a #[messaging] method takes `&self` or `&mut self`: the item stays in the pool after \
             the call, so a request cannot consume it",
        )),
        _ => errors.push(syn::Error::new_spanned(
            &sig.ident,
            "a #[messaging] method takes `&self` or `&mut self` first: it is called on the item \
             that the request is addressed to",
        )),
    }
    let mut args = Vec::new();
    for input in &sig.inputs {
        if let FnArg::Typed(arg) = input {
            errors.check(owned(&arg.ty, "argument", "it becomes a field of the request"));
            args.push((*arg.ty).clone());
        }
    }
    let result = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => {
            errors.check(owned(ty, "result", "it becomes a field of the response"));
            (**ty).clone()
        }
    };
    match errors.0 {
        Some(e) => Err(e),
        None => Ok(Endpoint {
            method: sig.ident.clone(),
            variant: camel(&sig.ident),
            request,
            response,
            args,
            result,
            cfgs: Vec::new(),
        }),
    }
}

/// Rejects the types that cannot be fields of a message sent to another
/// thread (borrows, `impl Trait`) or of a type declared outside the impl
/// (`Self`).
fn owned(ty: &Type, what: &str, why: &str) -> syn::Result<()> {
    let self_ty = std::iter::once(Ident::new("Self", Span::call_site())).collect();
    if !mentioned(&self_ty, |f| f.visit_type(ty)).is_empty() {
        return Err(syn::Error::new_spanned(
            ty,
            format!(
                "a #[messaging] {what} cannot mention `Self`: {why}, which is declared outside \
                 the impl block; name the type instead"
            ),
        ));
    }
    match ty {
        Type::Reference(_) => Err(syn::Error::new_spanned(
            ty,
            format!(
                "a #[messaging] {what} cannot be a reference: {why}, which crosses threads, \
                 so it must be owned (`String`, not `&str`)"
            ),
        )),
        Type::ImplTrait(_) => Err(syn::Error::new_spanned(
            ty,
            format!("a #[messaging] {what} cannot be `impl Trait`: {why}, which needs a named type"),
        )),
        _ => Ok(()),
    }
}

/// Reads the constructor: how it is called and whether it can fail.
fn constructor(sig: &Signature, explicit_init: Option<&Type>) -> syn::Result<Constructor> {
    if let Some(FnArg::Receiver(r)) = sig.inputs.first() {
        return Err(syn::Error::new_spanned(r, "`new` is the item's constructor: it cannot take `self`"));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "the constructor `new` cannot have generic parameters",
        ));
    }
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new_spanned(a, "the constructor `new` cannot be `async`"));
    }
    let typed: Vec<_> = sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let arity = match (typed.len(), explicit_init) {
        (1, None) => Arity::Id,
        (1, Some(_)) => Arity::Init,
        (2, _) => Arity::IdInit,
        _ => {
            let message = "the constructor takes the item's id, then optionally its init data: \
                           `fn new(id: u64) -> Self` or `fn new(id: u64, init: MyInit) -> Self`";
            return Err(if sig.inputs.is_empty() {
                syn::Error::new_spanned(&sig.ident, message)
            } else {
                syn::Error::new_spanned(&sig.inputs, message)
            });
        }
    };
    let init = match (explicit_init, arity) {
        (Some(t), _) => Some(t.clone()),
        (None, Arity::IdInit) => {
            let ty = &typed[1].ty;
            if let Type::Reference(_) = **ty {
                return Err(syn::Error::new_spanned(
                    ty,
                    "the init data is sent to the item's worker thread, so it must be owned",
                ));
            }
            Some((**ty).clone())
        }
        (None, _) => None,
    };
    let ReturnType::Type(_, output) = &sig.output else {
        return Err(syn::Error::new_spanned(
            &sig.ident,
            "the constructor must return `Self` or `Result<Self, E>`",
        ));
    };
    let fallible = match &**output {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        _ => false,
    };
    let id_ty = match arity {
        Arity::Id | Arity::IdInit => Some((*typed[0].ty).clone()),
        Arity::Init => None,
    };
    Ok(Constructor {
        arity,
        init,
        fallible,
        id_ty,
        output_ty: (**output).clone(),
        output: output.span(),
        broken: false,
    })
}

/// The stand-in for a missing or malformed `new` (an error already
/// reported): its init type is the one given or the one `new` seems to
/// take, so that the item's uses elsewhere do not fail too.
fn broken_constructor(sig: Option<&Signature>, explicit_init: Option<&Type>) -> Constructor {
    let second = sig.and_then(|sig| {
        sig.inputs
            .iter()
            .filter_map(|a| match a {
                FnArg::Typed(t) => Some(&t.ty),
                FnArg::Receiver(_) => None,
            })
            .nth(1)
            // `&T` (reported already: init data must be owned) stands for `T`.
            .map(|t| match &**t {
                Type::Reference(r) => (*r.elem).clone(),
                t => t.clone(),
            })
    });
    let init = explicit_init.cloned().or(second);
    Constructor {
        arity: if init.is_some() { Arity::IdInit } else { Arity::Id },
        init,
        fallible: false,
        id_ty: None,
        output_ty: syn::parse_quote!(Self),
        output: Span::call_site(),
        broken: true,
    }
}

/// Checks that no two generated types share a name, nor two methods a
/// variant. An endpoint whose names clash with earlier ones is reported and
/// dropped, so that what is generated is itself free of clashes.
fn check_names(
    errors: &mut Errors,
    item: &Ident,
    api: &mut Ident,
    response_enum: &mut Ident,
    init: Option<&mut Ident>,
    endpoints: &mut Vec<Endpoint>,
) {
    let mut taken: HashMap<String, String> = HashMap::new();
    taken.insert(item.to_string(), "the item itself".to_owned());
    let hint = "; name it in #[pool_item(api = .., response = .., init_request = ..)]";
    for (ident, what, fallback) in [
        (Some(api), "the generated request enum", "Api"),
        (Some(response_enum), "the generated response enum", "Response"),
        (init, "the generated init request", "Init"),
    ] {
        let Some(ident) = ident else { continue };
        if let Some(previous) = taken.get(&ident.to_string()) {
            errors.push(syn::Error::new_spanned(
                &*ident,
                format!("`{ident}` would be both {previous} and {what}{hint}"),
            ));
            // Generated under a name of its own, so that the clash is
            // reported once, here, and not again by every impl of the type.
            *ident = format_ident!("__{}{}Clash", item, fallback, span = ident.span());
        }
        taken.insert(ident.to_string(), what.to_owned());
    }
    let mut variants: HashMap<String, Ident> = HashMap::new();
    endpoints.retain(|e| {
        let mut fresh = true;
        for ident in [&e.request, &e.response] {
            if let Some(previous) = taken.get(&ident.to_string()) {
                errors.push(syn::Error::new_spanned(
                    ident,
                    format!(
                        "`{ident}` is already {previous}; each #[messaging] method needs request and \
                         response type names of its own"
                    ),
                ));
                fresh = false;
            }
        }
        if e.request == e.response {
            errors.push(syn::Error::new_spanned(
                &e.response,
                format!("`{}` cannot name both the request and the response", e.response),
            ));
            fresh = false;
        }
        if let Some(previous) = variants.get(&e.variant.to_string()) {
            errors.push(syn::Error::new_spanned(
                &e.method,
                format!(
                    "`{}` and `{previous}` would both be the variant `{}` of the generated enums; \
                     rename one of them",
                    e.method, e.variant
                ),
            ));
            fresh = false;
        }
        if fresh {
            taken.insert(e.request.to_string(), format!("the request type of `{}`", e.method));
            taken.insert(e.response.to_string(), format!("the response type of `{}`", e.method));
            variants.insert(e.variant.to_string(), e.method.clone());
        }
        fresh
    });
}

/// `tokens` (items) with `cfgs` added to each item: what is generated for
/// a `#[cfg(..)]` method exists exactly when the method does.
fn with_cfgs(tokens: TokenStream, cfgs: &[Attribute]) -> TokenStream {
    if cfgs.is_empty() {
        return tokens;
    }
    let file: syn::File = match syn::parse2(tokens.clone()) {
        Ok(file) => file,
        // Not items (cannot happen): leave them as they are.
        Err(_) => return tokens,
    };
    file.items.into_iter().map(|item| quote! { #(#cfgs)* #item }).collect()
}

/// A span located at `name` (so a clash of the type it names is reported
/// there) but resolved and linted as the macro's own code: lints about the
/// generated type (`unreachable_pub`, `large_enum_variant`) are not the
/// user's to fix, and a compiler suggestion must not edit the attribute.
fn at(name: &Ident) -> Span {
    Span::call_site().located_at(name.span())
}

/// `get_history` -> `GetHistory`.
fn camel(method: &Ident) -> Ident {
    let name = method.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    let mut out = String::new();
    for part in name.split('_') {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if !out.starts_with(|c: char| c.is_alphabetic()) {
        // `__` or `_1st` have no letter to start a variant name with.
        out.insert_str(0, "Call");
    }
    Ident::new(&out, method.span())
}

/// The path by which the calling crate knows `shardpool`: renamed in its
/// `Cargo.toml`, or `::shardpool` (which shardpool itself also answers to,
/// through `extern crate self as shardpool`).
fn crate_path() -> TokenStream {
    use proc_macro_crate::{crate_name, FoundCrate};
    match crate_name("shardpool") {
        Ok(FoundCrate::Name(name)) => {
            let name = Ident::new(&name, Span::call_site());
            quote!(::#name)
        }
        Ok(FoundCrate::Itself) | Err(_) => quote!(::shardpool),
    }
}

/// What the generated types implement besides the pool's traits.
enum Derives {
    /// `Debug`, `Clone` and `PartialEq`, each where every field has it
    /// (`derive.rs`).
    Conditional,
    /// What `derive(..)` listed, as a `#[derive]` attribute (empty for
    /// `derive()`).
    Listed(TokenStream),
}

impl Derives {
    fn of(args: &ItemArgs) -> Self {
        match &args.derives {
            None => Derives::Conditional,
            Some(paths) if paths.is_empty() => Derives::Listed(TokenStream::new()),
            Some(paths) => Derives::Listed(quote!(#[derive(#(#paths),*)])),
        }
    }

    /// The attribute to put on a generated type.
    fn attr(&self) -> Option<&TokenStream> {
        match self {
            Derives::Listed(attr) => Some(attr),
            Derives::Conditional => None,
        }
    }

    /// The impls to put beside a generated type.
    fn impls(&self, name: &Ident, generics: &Generics, shape: Shape<'_>) -> Option<TokenStream> {
        match self {
            Derives::Conditional => Some(conditional_impls(name, generics, &shape)),
            Derives::Listed(_) => None,
        }
    }
}

/// What the generated code is made of.
struct Gen<'a> {
    krate: TokenStream,
    self_ty: &'a Type,
    name: &'a Ident,
    /// The item's generics, as written: for the generated types' definitions.
    generics: &'a Generics,
    /// With the bounds the pool needs (`with_message_bounds`): for the impls.
    bounded: &'a Generics,
    api: &'a Ident,
    response_enum: &'a Ident,
    derives: Derives,
}

impl Gen<'_> {
    /// Whether an enum whose variants hold `types` leaves some type
    /// parameter of the item unused, and so needs the hidden phantom
    /// variant.
    fn needs_phantom<'t>(&self, types: impl IntoIterator<Item = &'t Type>) -> bool {
        let all = param_names(self.generics);
        let used = mentioned(&all, |f| types.into_iter().for_each(|t| f.visit_type(t)));
        self.generics.type_params().any(|p| !used.contains(&p.ident))
    }

    /// The generics of a type whose fields mention `types`.
    fn generics_of<'t>(&self, types: impl IntoIterator<Item = &'t Type>) -> Generics {
        let all = param_names(self.generics);
        let used = mentioned(&all, |f| types.into_iter().for_each(|t| f.visit_type(t)));
        subset(self.generics, &used)
    }

    /// The request and response structs of one endpoint, and their
    /// conversions.
    fn endpoint(&self, e: &Endpoint) -> TokenStream {
        with_cfgs(self.endpoint_items(e), &e.cfgs)
    }

    /// [`endpoint`](Self::endpoint), before the method's `cfg`s are added.
    fn endpoint_items(&self, e: &Endpoint) -> TokenStream {
        let Gen { krate, self_ty, name, api, response_enum, derives, .. } = self;
        let (impl_generics, ty_generics, where_clause) = self.bounded.split_for_impl();
        let Endpoint { method, variant, request, response, args, result, .. } = e;

        let req_generics = self.generics_of(args);
        let (req_def, req_ty, req_where) = req_generics.split_for_impl();
        let resp_generics = self.generics_of([result]);
        let (resp_def, resp_ty, resp_where) = resp_generics.split_for_impl();

        let request_doc = if args.is_empty() {
            format!("The request for `{name}::{method}`: the id of the item to call.")
        } else {
            format!("The request for `{name}::{method}`: the id of the item to call, then the method's arguments.")
        };
        let response_doc = format!("The response to a `{request}`: what `{name}::{method}` returned.");
        let result_doc = format!("What `{name}::{method}` returned.");

        // A field that is not `Send` fails `Request: Send` and `PoolItem::Api:
        // Send`, which the compiler reports at the generated types; this
        // reports it also at the argument or return type that brings it in.
        // Types that mention `Self` or the item's parameters cannot be named
        // outside the impl and are left to those bounds.
        let mut all = param_names(self.generics);
        all.insert(Ident::new("Self", Span::call_site()));
        let checks: Vec<_> = args
            .iter()
            .chain([result])
            .filter(|t| mentioned(&all, |f| f.visit_type(t)).is_empty())
            .map(|t| quote_spanned! {t.span()=> assert_send::<#t>(); })
            .collect();
        let send_check = (!checks.is_empty()).then(|| {
            quote! {
                const _: () = {
                    fn assert_send<T: ?::core::marker::Sized + ::core::marker::Send>() {}
                    #[allow(dead_code)]
                    fn check() {
                        #(#checks)*
                    }
                };
            }
        });

        let derive_attr = derives.attr();
        let id_ty: Type = syn::parse_quote!(u64);
        let request_impls = derives.impls(
            request,
            &req_generics,
            Shape::Tuple(std::iter::once(&id_ty).chain(args.iter()).collect()),
        );
        let response_impls = derives.impls(
            response,
            &resp_generics,
            Shape::Named(vec![
                (Ident::new("id", Span::call_site()), &id_ty),
                (Ident::new("result", Span::call_site()), result),
            ]),
        );

        // Each definition carries the span of its name where the user wrote
        // it, so that a clash with another type of the module is reported
        // at that name.
        let request_def = quote_spanned! {at(request)=>
            #[doc = #request_doc]
            #derive_attr
            pub struct #request #req_def (pub u64, #(pub #args),*) #req_where;
        };
        let response_def = quote_spanned! {at(response)=>
            #[doc = #response_doc]
            #derive_attr
            pub struct #response #resp_def #resp_where {
                /// The id of the item that answered.
                pub id: u64,
                #[doc = #result_doc]
                pub result: #result,
            }
        };

        quote! {
            #send_check

            #request_def

            #request_impls

            #response_def

            #response_impls

            impl #impl_generics #krate::Request<#self_ty> for #request #req_ty #where_clause {
                type Response = #response #resp_ty;

                fn into_message(self) -> #krate::Message<#self_ty> {
                    #krate::Message::Call { id: self.0, request: #api::#variant(self) }
                }

                fn from_reply(reply: #krate::Reply<#self_ty>) -> ::core::option::Option<Self::Response> {
                    match reply {
                        #krate::Reply::Response(#response_enum::#variant(response)) => {
                            ::core::option::Option::Some(response)
                        }
                        _ => ::core::option::Option::None,
                    }
                }
            }

            impl #impl_generics ::core::convert::From<#request #req_ty> for #api #ty_generics #where_clause {
                fn from(request: #request #req_ty) -> Self {
                    #api::#variant(request)
                }
            }

            impl #impl_generics ::core::convert::From<#response #resp_ty> for #response_enum #ty_generics
            #where_clause
            {
                fn from(response: #response #resp_ty) -> Self {
                    #response_enum::#variant(response)
                }
            }

            impl #impl_generics ::core::convert::From<#response #resp_ty> for #krate::Reply<#self_ty>
            #where_clause
            {
                fn from(response: #response #resp_ty) -> Self {
                    #krate::Reply::Response(#response_enum::#variant(response))
                }
            }
        }
    }

    /// The item's request and response enums.
    fn enums(&self, endpoints: &[Endpoint]) -> TokenStream {
        let Gen { krate, self_ty, name, api, response_enum, derives, .. } = self;
        let (def_generics, ty_generics, where_clause) = self.generics.split_for_impl();
        let (impl_generics, _, impl_where) = self.bounded.split_for_impl();
        let type_params: Vec<_> = self
            .generics
            .params
            .iter()
            .filter_map(|p| match p {
                GenericParam::Type(t) => Some(&t.ident),
                _ => None,
            })
            .collect();
        // An enum must use each of its type parameters. Where its variants
        // leave one unused, this variant uses them all, and can never be
        // built. (Only then: `Infallible` has no serde impls, so a listed
        // `derive(Serialize)` would fail on it.)
        let phantom_variant = quote! {
            #[doc(hidden)]
            __Phantom(::core::convert::Infallible, ::core::marker::PhantomData<fn() -> (#(#type_params,)*)>),
        };
        let api_phantom =
            self.needs_phantom(endpoints.iter().flat_map(|e| &e.args)).then(|| phantom_variant.clone());
        let response_phantom =
            self.needs_phantom(endpoints.iter().map(|e| &e.result)).then(|| phantom_variant.clone());
        let api_variants = endpoints.iter().map(|e| {
            let Endpoint { method, variant, request, args, cfgs, .. } = e;
            let req_ty = self.generics_of(args);
            let (_, req_ty, _) = req_ty.split_for_impl();
            let doc = format!("Calls `{name}::{method}`.");
            quote!(#(#cfgs)* #[doc = #doc] #variant(#request #req_ty),)
        });
        let response_variants = endpoints.iter().map(|e| {
            let Endpoint { method, variant, response, result, cfgs, .. } = e;
            let resp_ty = self.generics_of([result]);
            let (_, resp_ty, _) = resp_ty.split_for_impl();
            let doc = format!("What `{name}::{method}` returned.");
            quote!(#(#cfgs)* #[doc = #doc] #variant(#response #resp_ty),)
        });
        let api_doc = format!("The requests a `{name}` answers, one variant per `#[messaging]` method.");
        let response_doc = format!("The responses of a `{name}`, one variant per `#[messaging]` method.");
        let derive_attr = derives.attr();
        let api_impls = derives.impls(
            api,
            self.generics,
            Shape::Enum {
                variants: endpoints
                    .iter()
                    .map(|e| {
                        let g = self.generics_of(&e.args);
                        let (_, ty, _) = g.split_for_impl();
                        let request = &e.request;
                        (&e.variant, syn::parse_quote!(#request #ty), &e.cfgs[..])
                    })
                    .collect(),
                phantom: api_phantom.is_some(),
            },
        );
        let response_impls = derives.impls(
            response_enum,
            self.generics,
            Shape::Enum {
                variants: endpoints
                    .iter()
                    .map(|e| {
                        let g = self.generics_of([&e.result]);
                        let (_, ty, _) = g.split_for_impl();
                        let response = &e.response;
                        (&e.variant, syn::parse_quote!(#response #ty), &e.cfgs[..])
                    })
                    .collect(),
                phantom: response_phantom.is_some(),
            },
        );
        // Spanned at their names, as the request and response structs are.
        let api_def = quote_spanned! {at(api)=>
            #[doc = #api_doc]
            #derive_attr
            pub enum #api #def_generics #where_clause {
                #(#api_variants)*
                #api_phantom
            }
        };
        let response_def = quote_spanned! {at(response_enum)=>
            #[doc = #response_doc]
            #derive_attr
            pub enum #response_enum #def_generics #where_clause {
                #(#response_variants)*
                #response_phantom
            }
        };
        quote! {
            #api_def

            #api_impls

            #response_def

            #response_impls

            impl #impl_generics ::core::convert::From<#response_enum #ty_generics> for #krate::Reply<#self_ty>
            #impl_where
            {
                fn from(response: #response_enum #ty_generics) -> Self {
                    #krate::Reply::Response(response)
                }
            }
        }
    }

    /// `ItemInit(id)`: the add request of an item whose constructor takes
    /// only its id.
    fn init_request(&self, init: &Ident) -> TokenStream {
        let Gen { krate, self_ty, name, derives, .. } = self;
        let (impl_generics, _, where_clause) = self.bounded.split_for_impl();
        let derive_attr = derives.attr();
        let id_ty: Type = syn::parse_quote!(u64);
        let init_impls = derives.impls(init, &Generics::default(), Shape::Tuple(vec![&id_ty]));
        let doc = format!(
            "Creates the `{name}` with this id: the same as `AddRequest::new(id, ())`, \
             answered with an `AddResponse`."
        );
        let init_def = quote_spanned! {at(init)=>
            #[doc = #doc]
            #derive_attr
            pub struct #init(pub u64);
        };
        quote! {
            #init_def

            #init_impls

            impl #impl_generics #krate::Request<#self_ty> for #init #where_clause {
                type Response = #krate::AddResponse;

                fn into_message(self) -> #krate::Message<#self_ty> {
                    #krate::Message::Add { id: self.0, init: () }
                }

                fn from_reply(reply: #krate::Reply<#self_ty>) -> ::core::option::Option<#krate::AddResponse> {
                    <#krate::AddRequest<#self_ty> as #krate::Request<#self_ty>>::from_reply(reply)
                }
            }
        }
    }

    /// The `PoolItem` implementation.
    fn pool_item(
        &self,
        endpoints: &[Endpoint],
        ctor: &Constructor,
        thread_state: &TokenStream,
        hooks: &[ImplItemFn],
    ) -> TokenStream {
        let Gen { krate, self_ty, api, response_enum, .. } = self;
        let (impl_generics, ty_generics, where_clause) = self.bounded.split_for_impl();

        let init_ty = ctor.init.as_ref().map_or_else(|| quote!(()), |t| quote!(#t));
        // Init data that is not `Send` is reported at its type, as a
        // message's argument is (`endpoint`): the bounds on the impl would
        // only make the item unusable, with the error at its first use.
        let mut params = param_names(self.generics);
        params.insert(Ident::new("Self", Span::call_site()));
        let init_check = ctor
            .init
            .as_ref()
            .filter(|t| !ctor.broken && mentioned(&params, |f| f.visit_type(t)).is_empty())
            .map(|t| {
                let check = quote_spanned! {t.span()=> assert_send::<#t>(); };
                quote! {
                    const _: () = {
                        fn assert_send<T: ?::core::marker::Sized + ::core::marker::Send + 'static>() {}
                        #[allow(dead_code)]
                        fn check() {
                            #check
                        }
                    };
                }
            });
        // The id goes through `ItemId`, implemented for `u64` alone, so that
        // a constructor whose one parameter is really init data gets one
        // error at that parameter's type, with the fix in its text.
        let id = ctor.id_ty.as_ref().map(|t| {
            quote_spanned! {t.span()=> <#t as #krate::__private::ItemId>::from_id(__id) }
        });
        let (id_pat, init_pat, call) = match ctor.arity {
            Arity::Id => (quote!(__id), quote!(_), quote!(#id)),
            Arity::Init => (quote!(_), quote!(__init), quote!(__init)),
            Arity::IdInit => (quote!(__id), quote!(__init), quote!(#id, __init)),
        };
        // Spanned at the constructor's return type, so that a type error
        // in the call is reported there: an error type that is not one
        // (`ConstructorError`), or a return type that is not the item
        // (`Constructed`, implemented for the item alone).
        let output_ty = &ctor.output_ty;
        let build = if ctor.broken {
            quote!(::core::panic!("the constructor did not compile"))
        } else if ctor.fallible {
            quote_spanned! {ctor.output=>
                ::core::result::Result::map_err(Self::new(#call), |e| #krate::__private::new_item_error(e))
            }
        } else {
            quote_spanned! {ctor.output=>
                ::core::result::Result::Ok(
                    <#output_ty as #krate::__private::Constructed<Self>>::item(Self::new(#call))
                )
            }
        };

        let arms = endpoints.iter().map(|e| {
            let Endpoint { method, variant, request, response, args, cfgs, .. } = e;
            let names: Vec<_> = (0..args.len()).map(|i| format_ident!("__arg{}", i)).collect();
            quote! {
                #(#cfgs)*
                #api::#variant(#request(__id, #(#names),*)) => {
                    #response_enum::#variant(#response { id: __id, result: Self::#method(self, #(#names),*) })
                }
            }
        });
        let phantom_arm = self
            .needs_phantom(endpoints.iter().flat_map(|e| &e.args))
            .then(|| quote!(#api::__Phantom(never, _) => match never {},));

        quote! {
            #init_check

            impl #impl_generics #krate::PoolItem for #self_ty #where_clause {
                type Init = #init_ty;
                type Api = #api #ty_generics;
                type Response = #response_enum #ty_generics;
                type ThreadState = #thread_state;

                // The user's own methods may be deprecated; calling them is ours.
                #[allow(deprecated)]
                fn new_pool_item(#id_pat: u64, #init_pat: Self::Init)
                    -> ::core::result::Result<Self, #krate::NewItemError>
                {
                    #build
                }

                #[allow(deprecated)]
                fn process_message(&mut self, request: Self::Api) -> Self::Response {
                    match request {
                        #(#arms)*
                        #phantom_arm
                    }
                }

                #(#hooks)*
            }
        }
    }
}
