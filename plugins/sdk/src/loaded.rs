use std::sync::OnceLock;

/// A value built once per plugin instance, typically the parsed
/// configuration: build it in `init` and fetch it again in every call.
///
/// [`get_or_load`](Loaded::get_or_load) runs `load` only while no value is
/// stored, so a call that arrives on an instance whose `init` never ran (or
/// failed) loads it then, or gets the same error `init` would have returned.
///
/// ```ignore
/// static CONFIG: Loaded<Config> = Loaded::new();
///
/// fn init() -> Result<(), String> {
///     CONFIG.get_or_load(load).map(|_| ())
/// }
/// ```
pub struct Loaded<T> {
    cell: OnceLock<T>,
}

impl<T> Loaded<T> {
    /// An empty cell, usable in a `static`.
    pub const fn new() -> Self {
        Loaded { cell: OnceLock::new() }
    }

    /// The stored value, or the result of `load`, which is stored on success.
    pub fn get_or_load(&self, load: impl FnOnce() -> Result<T, String>) -> Result<&T, String> {
        if let Some(value) = self.cell.get() {
            return Ok(value);
        }
        let value = load()?;
        Ok(self.cell.get_or_init(|| value))
    }

    /// The stored value, if loaded.
    pub fn get(&self) -> Option<&T> {
        self.cell.get()
    }
}

impl<T> Default for Loaded<T> {
    fn default() -> Self {
        Self::new()
    }
}
