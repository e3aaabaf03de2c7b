"""The node's first schema: generated from the models, frozen since it landed.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "agreement_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agreement_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.Column("reported_at", sa.String(length=40), nullable=True),
        sa.Column("hub_answer", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agreement_notices")),
    )
    op.create_index(
        op.f("ix_agreement_notices_agreement_id"),
        "agreement_notices",
        ["agreement_id"],
        unique=False,
    )
    op.create_table(
        "agreements",
        sa.Column("agreement_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("signed_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("agreement_id", "version", name=op.f("pk_agreements")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.String(length=40), nullable=False),
        sa.Column("published_at", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("object", sa.String(length=300), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_table(
        "budget_charges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("query_id", sa.String(length=36), nullable=False),
        sa.Column("agreement_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rho", sa.Float(), nullable=False),
        sa.Column("charged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period", sa.String(length=20), nullable=False),
        sa.Column("analyst", sa.String(length=200), nullable=True),
        sa.Column("organisation", sa.String(length=200), nullable=True),
        sa.Column("dataset", sa.String(length=63), nullable=False),
        sa.Column("measure", sa.String(length=20), nullable=False),
        sa.Column("column", sa.String(length=63), nullable=True),
        sa.Column("group_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_charges")),
        sa.UniqueConstraint("query_id", name=op.f("uq_budget_charges_query_id")),
    )
    op.create_index(
        op.f("ix_budget_charges_agreement_id"), "budget_charges", ["agreement_id"], unique=False
    )
    op.create_index(
        op.f("ix_budget_charges_charged_at"), "budget_charges", ["charged_at"], unique=False
    )
    op.create_table(
        "budgets",
        sa.Column("agreement_id", sa.String(length=100), nullable=False),
        sa.Column("rho_spent", sa.Float(), nullable=False),
        sa.Column("queries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("agreement_id", name=op.f("pk_budgets")),
    )
    op.create_table(
        "releases",
        sa.Column("query_id", sa.String(length=36), nullable=False),
        sa.Column("agreement_id", sa.String(length=100), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("rho", sa.Float(), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("release", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("query_id", name=op.f("pk_releases")),
    )
    op.create_table(
        "steward_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=300), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_confirmed", sa.Boolean(), nullable=False),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_steward_accounts")),
    )
    op.create_index(
        op.f("ix_steward_accounts_username"), "steward_accounts", ["username"], unique=True
    )
    op.create_table(
        "steward_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["steward_accounts.id"],
            name=op.f("fk_steward_tokens_account_id_steward_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_steward_tokens")),
    )
    op.create_index(
        op.f("ix_steward_tokens_token_hash"), "steward_tokens", ["token_hash"], unique=True
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_steward_tokens_token_hash"), table_name="steward_tokens")
    op.drop_table("steward_tokens")
    op.drop_index(op.f("ix_steward_accounts_username"), table_name="steward_accounts")
    op.drop_table("steward_accounts")
    op.drop_table("releases")
    op.drop_table("budgets")
    op.drop_index(op.f("ix_budget_charges_charged_at"), table_name="budget_charges")
    op.drop_index(op.f("ix_budget_charges_agreement_id"), table_name="budget_charges")
    op.drop_table("budget_charges")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("audit_head")
    op.drop_table("audit_checkpoints")
    op.drop_table("agreements")
    op.drop_index(op.f("ix_agreement_notices_agreement_id"), table_name="agreement_notices")
    op.drop_table("agreement_notices")
