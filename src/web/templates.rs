//! HTML pages: the templates in `templates/` are compiled in; `[server] templates = "<dir>"`
//! lets an admin override any of them by file name at run time.
use minijinja::{Environment, Value};
use std::path::PathBuf;

const EMBEDDED: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("signin.html", include_str!("../../templates/signin.html")),
    ("signout.html", include_str!("../../templates/signout.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("account.html", include_str!("../../templates/account.html")),
    (
        "dev_authorize.html",
        include_str!("../../templates/dev_authorize.html"),
    ),
];

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Loads templates, preferring files in `override_dir`. Every template is parsed now, so a
    /// broken override is reported at start-up rather than on a user's request.
    pub fn new(override_dir: Option<PathBuf>) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.set_loader(move |name| {
            if let Some(dir) = &override_dir {
                let path = dir.join(name);
                if path.is_file() {
                    return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                        minijinja::Error::new(
                            minijinja::ErrorKind::InvalidOperation,
                            format!("cannot read {}: {e}", path.display()),
                        )
                    });
                }
            }
            Ok(EMBEDDED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, src)| src.to_string()))
        });
        for (name, _) in EMBEDDED {
            env.get_template(name)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Templates { env })
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}
