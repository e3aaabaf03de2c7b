"""Identity and access at the hub, one module per section: `organisations`, `users` (role
grants, passwords, TOTP), `sessions` (password login, browser sessions, CSRF), `tokens` (API
tokens), `oidc` (single sign-on); `_accounts` holds what the sections share."""
