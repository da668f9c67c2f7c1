// The login page: the owner's printed URL logs in by itself; here an API key (or the token) does.
import {api} from "../api.js";
import {errorBox, fill, h} from "../dom.js";

const MESSAGES = {
  "bad-token": "That login link is not valid (the server makes a new token at every start).",
  expired: "Your session has ended.",
};

export function renderLogin(root, state, onLoggedIn) {
  const problem = h("div");
  const key = h("input", {type: "password", id: "api-key", name: "apiKey", autocomplete: "off", required: true,
    placeholder: "mld_…", "aria-describedby": "key-help"});
  const form = h("form", {class: "login", onsubmit: async (e) => {
    e.preventDefault();
    const value = key.value.trim();
    fill(problem);
    try {
      await api("/ui/login", {method: "POST", // API keys start with mld_; anything else is tried as the owner's token.
        body: value.startsWith("mld_") ? {apiKey: value} : {token: value}, quiet401: true});
      onLoggedIn();
    } catch (err) {
      fill(problem, errorBox(err));
      key.select();
    }
  }},
  h("h1", null, "Sign in to ml-dash"),
  state.query && MESSAGES[state.query.error] ? h("p", {class: "error", role: "alert"}, MESSAGES[state.query.error])
    : null,
  h("label", {for: "api-key"}, "API key or login token"),
  key,
  h("p", {id: "key-help", class: "muted"},
    "An API key shows its own namespace (create one: ml-dash serve token create NAME). ",
    "The server owner opens the URL that ml-dash serve printed instead."),
  h("button", {type: "submit", class: "primary"}, "Sign in"),
  problem);
  fill(root, form);
  key.focus();
  return () => {};
}
