//! The default `Debug`, `Clone` and `PartialEq` of the generated types.
//!
//! `#[derive(..)]` would make each generated type fail to compile as soon as
//! one argument or result lacks the trait (three errors at the attribute,
//! none at the argument). These impls are written out instead, each bounded
//! by its field types: `impl Debug for FooRequest where for<'__a> Arg: Debug`.
//! A type then has the trait exactly when all its fields do, as derives on
//! generic types behave; code that needs the trait of a type lacking it gets
//! the error where it asks for it. The `for<'__a>` binder keeps a bound on a
//! concrete type that does not hold (`Handle: Clone`) from being an error by
//! itself: the impl simply does not apply.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Generics, Ident, Type};

/// The fields of a generated type.
pub(crate) enum Shape<'a> {
    /// `Name(pub u64, pub A, ..)`.
    Tuple(Vec<&'a Type>),
    /// `Name { pub id: u64, pub result: R }`.
    Named(Vec<(Ident, &'a Type)>),
    /// `enum Name { V(Inner), .., __Phantom(Infallible, PhantomData<..>) }`,
    /// each variant with the `cfg`s of its method.
    Enum { variants: Vec<(&'a Ident, Type, &'a [syn::Attribute])>, phantom: bool },
}

/// `Debug`, `Clone` and `PartialEq` for the type `name` with these generics
/// and fields, each bounded by the fields' types.
pub(crate) fn conditional_impls(name: &Ident, generics: &Generics, shape: &Shape<'_>) -> TokenStream {
    let field_types: Vec<&Type> = match shape {
        Shape::Tuple(types) => types.clone(),
        Shape::Named(fields) => fields.iter().map(|(_, t)| *t).collect(),
        // A variant under `#[cfg]` may not exist, and a bound cannot be
        // made conditional: such a variant's type must have the traits
        // outright when it does exist.
        Shape::Enum { variants, .. } => {
            variants.iter().filter(|(_, _, c)| c.is_empty()).map(|(_, t, _)| t).collect()
        }
    };
    let bounded = |bound: TokenStream| -> Generics {
        let mut g = generics.clone();
        let clause = g.make_where_clause();
        for t in &field_types {
            clause.predicates.push(syn::parse_quote!(for<'__a> #t: #bound));
        }
        g
    };
    let debug = bounded(quote!(::core::fmt::Debug));
    let clone = bounded(quote!(::core::clone::Clone));
    let eq = bounded(quote!(::core::cmp::PartialEq));
    let (debug_impl, ty, debug_where) = debug.split_for_impl();
    let (clone_impl, _, clone_where) = clone.split_for_impl();
    let (eq_impl, _, eq_where) = eq.split_for_impl();
    let label = name.to_string();

    // Equality is called through the trait on references, never as
    // `a == b`: for a field of type `Box<dyn Trait>` the operator would try
    // an unsizing coercion that moves its right-hand side out of `other`.
    let (fmt_body, clone_body, eq_body) = match shape {
        Shape::Tuple(types) => {
            let idx: Vec<_> = (0..types.len()).map(syn::Index::from).collect();
            (
                quote!(f.debug_tuple(#label) #(.field(&self.#idx))* .finish()),
                quote!(#name(#(::core::clone::Clone::clone(&self.#idx)),*)),
                quote!(true #(&& ::core::cmp::PartialEq::eq(&self.#idx, &other.#idx))*),
            )
        }
        Shape::Named(fields) => {
            let names: Vec<_> = fields.iter().map(|(n, _)| n).collect();
            let labels: Vec<_> = names.iter().map(|n| n.to_string()).collect();
            (
                quote!(f.debug_struct(#label) #(.field(#labels, &self.#names))* .finish()),
                quote!(#name { #(#names: ::core::clone::Clone::clone(&self.#names)),* }),
                quote!(true #(&& ::core::cmp::PartialEq::eq(&self.#names, &other.#names))*),
            )
        }
        Shape::Enum { variants, phantom } => {
            let vs: Vec<_> = variants.iter().map(|(v, _, _)| *v).collect();
            let cfgs: Vec<_> = variants.iter().map(|(_, _, c)| *c).collect();
            let labels: Vec<_> = vs.iter().map(|v| v.to_string()).collect();
            let phantom_fmt = phantom.then(|| quote!(#name::__Phantom(never, _) => match *never {},));
            let phantom_clone = phantom.then(|| quote!(#name::__Phantom(never, _) => match *never {},));
            let phantom_eq = phantom.then(|| quote!((#name::__Phantom(never, _), _) => match *never {},));
            let arms = variants.len() + usize::from(*phantom);
            let other_arm = (arms > 1).then(|| quote!(_ => false,));
            let a = Ident::new("__a", Span::call_site());
            let b = Ident::new("__b", Span::call_site());
            if arms == 0 {
                // An item with no #[messaging] method: the enum is empty and
                // `*self` has no value to match.
                let none = quote!(match *self {});
                (none.clone(), none.clone(), none)
            } else {
                (
                    quote!(match self {
                        #(#(#cfgs)* #name::#vs(#a) => f.debug_tuple(#labels).field(#a).finish(),)*
                        #phantom_fmt
                    }),
                    quote!(match self {
                        #(#(#cfgs)* #name::#vs(#a) => #name::#vs(::core::clone::Clone::clone(#a)),)*
                        #phantom_clone
                    }),
                    quote!(#[allow(unreachable_patterns)] match (self, other) {
                        #(#(#cfgs)* (#name::#vs(#a), #name::#vs(#b)) => ::core::cmp::PartialEq::eq(#a, #b),)*
                        #phantom_eq
                        #other_arm
                    }),
                )
            }
        }
    };
    quote! {
        impl #debug_impl ::core::fmt::Debug for #name #ty #debug_where {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                #fmt_body
            }
        }

        impl #clone_impl ::core::clone::Clone for #name #ty #clone_where {
            fn clone(&self) -> Self {
                #clone_body
            }
        }

        impl #eq_impl ::core::cmp::PartialEq for #name #ty #eq_where {
            fn eq(&self, other: &Self) -> bool {
                #eq_body
            }
        }
    }
}
