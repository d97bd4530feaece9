//! The `#[pool_item]` attribute macro of [shardpool](https://docs.rs/shardpool).
//!
//! Use it through `shardpool::pool_item` (the default `macros` feature); this
//! crate holds only the macro. Its documentation is on [`pool_item`].
#![warn(missing_docs)]

mod args;
mod derive;
mod expand;
mod generics;

use proc_macro::TokenStream;
use syn::{parse_macro_input, ItemImpl};

/// Makes a pool item from one annotated `impl` block: the request and
/// response types, the item's request and response enums, every conversion
/// and the whole `PoolItem` implementation.
///
/// ```
/// use shardpool::{pool_item, ThreadPool};
///
/// pub struct ChatRoom {
///     history: Vec<String>,
/// }
///
/// #[pool_item]
/// impl ChatRoom {
///     pub fn new(_id: u64) -> Self {
///         ChatRoom { history: Vec::new() }
///     }
///
///     #[messaging(PostRequest, PostResponse)]
///     pub fn post(&mut self, user: String, text: String) -> usize {
///         self.history.push(format!("{user}: {text}"));
///         self.history.len()
///     }
///
///     #[messaging(HistoryRequest, HistoryResponse)]
///     pub fn history(&self) -> Vec<String> {
///         self.history.clone()
///     }
/// }
///
/// let pool = ThreadPool::<ChatRoom>::new(2)?;
/// pool.send_and_receive_once(ChatRoomInit(1))?;
/// let posted = pool.send_and_receive_once(PostRequest(1, "ann".into(), "hi".into()))?;
/// assert_eq!((posted.id, posted.result), (1, 1));
/// let history = pool.send_and_receive_once(HistoryRequest(1))?.result;
/// assert_eq!(history, ["ann: hi"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # What it reads
///
/// - **The constructor**, `new`, in the same impl block. It takes the item's
///   id and, optionally, its init data, and returns `Self` or
///   `Result<Self, E>`, where `E` is an error type
///   (`std::error::Error + Send + Sync + 'static`), a `String`, a `&str` or
///   `NewItemError`. An `Err` reaches the caller whole, as
///   `Error::InitFailed` (its `source()` is the constructor's error), and no
///   item is added:
///
///   | constructor | `PoolItem::Init` | add the item with |
///   |---|---|---|
///   | `fn new(id: u64) -> Self` | `()` | `ItemInit(id)` (generated) or `AddRequest::new(id, ())` |
///   | `fn new(id: u64, init: T) -> Self` | `T` | `AddRequest::new(id, init)` |
///   | `fn new(init: T) -> Self`, with `init = T` | `T` | `AddRequest::new(id, init)` |
///
/// - **Each method marked `#[messaging(FooRequest, FooResponse)]`.** It takes
///   `&self` or `&mut self` and any owned arguments, and returns anything
///   (or nothing). It stays an ordinary method, callable directly. Its
///   `#[cfg(..)]` attributes apply to everything generated for it.
///
/// - **Each method marked `#[hook]`**, named for one of `PoolItem`'s hooks
///   (`placement`, `new_thread_state`, `pre_process`, `post_process`,
///   `on_shutdown`) and with its signature. It is moved into the generated
///   `PoolItem` impl, so `Self::ThreadState` may appear in it.
///
/// # What it generates
///
/// For an item `Item` and a method `fn foo(&self, a: A, b: B) -> R` marked
/// `#[messaging(FooRequest, FooResponse)]`:
///
/// | type | what it is |
/// |---|---|
/// | `pub struct FooRequest(pub u64, pub A, pub B)` | the item's id, then the arguments; implements `Request<Item>` with `Response = FooResponse` |
/// | `pub struct FooResponse { pub id: u64, pub result: R }` | what the call returned (`R = ()` for none) |
/// | `pub enum ItemApi { Foo(FooRequest), .. }` | `PoolItem::Api`; one variant per method, named for it in `UpperCamelCase` |
/// | `pub enum ItemResponse { Foo(FooResponse), .. }` | `PoolItem::Response` |
/// | `pub struct ItemInit(pub u64)` | only for `fn new(id: u64)`: the add request, answered with an `AddResponse` |
/// | `impl PoolItem for Item` | the constructor, `process_message` and the hooks |
///
/// and `From` conversions from each request into `ItemApi`, and from each
/// response into `ItemResponse` and into `Reply<Item>` (what a mock pool's
/// canned responses are made of). The generated types are `pub` and
/// implement `Debug`, `Clone` and `PartialEq` wherever their fields do (an
/// argument without `Clone` leaves its request without `Clone`, and nothing
/// else), unless `derive(..)` says otherwise.
///
/// Every path in the generated code is absolute, through the name under
/// which the calling crate's `Cargo.toml` lists shardpool (so a renamed
/// dependency works), and nothing needs importing but the attribute itself.
///
/// # Arguments
///
/// `#[pool_item(init = T, thread_state = S, derive(Trait, ..), api = Name,
/// response = Name, init_request = Name, crate = path)]`, each optional:
///
/// - `init = T`: the item's init type. Without it the type is read from the
///   constructor's second parameter. With it, a one-parameter constructor is
///   handed the init data alone (as messaging_thread_pool's `Init = "T"`
///   was, which is accepted too).
/// - `thread_state = S`: the state each worker keeps for its items
///   (`PoolItem::ThreadState`, `()` if not given), handed to the hooks.
/// - `derive(..)`: what the generated types derive, instead of the default
///   `Debug`, `Clone` and `PartialEq` (`derive()` for nothing), for example
///   `derive(Debug, Clone, serde::Serialize)`.
/// - `crate = path::to::shardpool`: where the generated code finds shardpool,
///   for a crate that reaches it through another crate's re-export (by
///   default: the name under which `Cargo.toml` lists it).
/// - `api = Name`, `response = Name`, `init_request = Name`: the names of
///   the request enum, the response enum and the `ItemInit` request, in
///   place of `ItemApi`, `ItemResponse` and `ItemInit`, where those would
///   clash with a type of the module (another item's, or your own).
///
/// # Fallible constructor, init data, hooks and thread state
///
/// ```
/// use shardpool::{pool_item, AddRequest, Error, ThreadPool};
///
/// /// Counts the requests each worker has handled.
/// #[derive(Default)]
/// pub struct Handled(u64);
///
/// pub struct Account {
///     balance: u64,
/// }
///
/// #[pool_item(thread_state = Handled)]
/// impl Account {
///     pub fn new(_id: u64, opening: u64) -> Result<Self, String> {
///         if opening == 0 {
///             return Err("an account opens with a deposit".to_owned());
///         }
///         Ok(Account { balance: opening })
///     }
///
///     #[messaging(DepositRequest, DepositResponse)]
///     pub fn deposit(&mut self, amount: u64) -> u64 {
///         self.balance += amount;
///         self.balance
///     }
///
///     /// Every account lives on worker 0.
///     #[hook]
///     fn placement(_id: u64, _workers: usize) -> usize {
///         0
///     }
///
///     #[hook]
///     fn post_process(&mut self, handled: &mut Handled) {
///         handled.0 += 1;
///     }
/// }
///
/// let pool = ThreadPool::<Account>::new(2)?;
/// pool.send_and_receive_once(AddRequest::new(1, 100))?;
/// assert_eq!(pool.send_and_receive_once(DepositRequest(1, 5))?.result, 105);
/// assert!(matches!(
///     pool.send_and_receive_once(AddRequest::new(2, 0)),
///     Err(Error::InitFailed { id: 2, .. })
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Generic items
///
/// The impl block may have type and const parameters (not lifetimes: an
/// item outlives any borrow). The macro adds the bounds the pool needs to
/// its own impls, so none need writing: `T: 'static` for each type
/// parameter, and `Send + 'static` for each message type that mentions one
/// (an argument, a result, the init data); a parameter that never travels in
/// a message need not be `Send`. A request or response struct takes only
/// the parameters its fields mention, so `LenRequest(7)` below needs no type
/// annotation.
///
/// ```
/// use shardpool::{pool_item, AddRequest, ThreadPool};
///
/// pub struct Stack<T> {
///     items: Vec<T>,
/// }
///
/// #[pool_item]
/// impl<T> Stack<T> {
///     pub fn new(_id: u64, first: T) -> Self {
///         Stack { items: vec![first] }
///     }
///
///     #[messaging(PushRequest, PushResponse)]
///     pub fn push(&mut self, item: T) {
///         self.items.push(item);
///     }
///
///     #[messaging(LenRequest, LenResponse)]
///     pub fn len(&self) -> usize {
///         self.items.len()
///     }
/// }
///
/// let pool = ThreadPool::<Stack<String>>::new(1)?;
/// pool.send_and_receive_once(AddRequest::new(7, "a".to_owned()))?;
/// pool.send_and_receive_once(PushRequest(7, "b".to_owned()))?;
/// assert_eq!(pool.send_and_receive_once(LenRequest(7))?.result, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Compile errors
///
/// Misuse is one error at the offending tokens, with the fix in its text:
/// a `#[messaging]` method taking `self` by value (or no `self`), a borrowed
/// argument, a request or response name used twice, a missing or malformed
/// `new`, a one-parameter `new` whose parameter is init data rather than the
/// id, a `new` returning `Option<Self>`, an error type that is not one, a
/// `#[hook]` that names no hook, an unknown argument, two generated names
/// that clash. The macro still generates the rest (the valid endpoints, the
/// enums, the `PoolItem` impl), so one mistake does not also fail every use
/// of the item elsewhere in the crate; `tests/ui/` holds a case for each.
/// A clash with a type outside the impl block (another item's `GetRequest`,
/// your own `BookInit`) is the compiler's "defined multiple times" error, at
/// the generated name; rename it with `#[messaging(..)]` or the arguments
/// above. A request whose fields are not `Send` is rejected by the
/// compiler, since `PoolItem::Api` must be `Send`:
///
/// ```compile_fail,E0277
/// use shardpool::pool_item;
/// use std::rc::Rc;
///
/// pub struct Shelf;
///
/// #[pool_item]
/// impl Shelf {
///     pub fn new(_id: u64) -> Self {
///         Shelf
///     }
///
///     // An `Rc` cannot be sent to the item's worker.
///     #[messaging(PutRequest, PutResponse)]
///     pub fn put(&self, _book: Rc<String>) {}
/// }
/// ```
///
/// ```compile_fail
/// use shardpool::pool_item;
///
/// pub struct Shelf;
///
/// #[pool_item]
/// impl Shelf {
///     pub fn new(_id: u64) -> Self {
///         Shelf
///     }
///
///     // error: a #[messaging] method takes `&self` or `&mut self`
///     #[messaging(TakeRequest, TakeResponse)]
///     pub fn take(self) {}
/// }
/// ```
///
/// The item itself need not be `Send`: it is built on its worker and never
/// leaves it.
///
/// ```
/// use shardpool::{pool_item, ThreadPool};
/// use std::{cell::RefCell, rc::Rc};
///
/// pub struct Tally(Rc<RefCell<u32>>);
///
/// #[pool_item]
/// impl Tally {
///     pub fn new(_id: u64) -> Self {
///         Tally(Rc::default())
///     }
///
///     #[messaging(BumpRequest, BumpResponse)]
///     pub fn bump(&self) -> u32 {
///         *self.0.borrow_mut() += 1;
///         *self.0.borrow()
///     }
/// }
///
/// let pool = ThreadPool::<Tally>::new(1)?;
/// pool.send_and_receive_once(TallyInit(3))?;
/// pool.send_and_receive_once(BumpRequest(3))?;
/// assert_eq!(pool.send_and_receive_once(BumpRequest(3))?.result, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[proc_macro_attribute]
pub fn pool_item(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as args::ItemArgs);
    let input = parse_macro_input!(item as ItemImpl);
    expand::expand(args, input).into()
}
