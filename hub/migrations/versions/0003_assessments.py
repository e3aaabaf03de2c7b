"""assessments: templates, rounds, round queries and self-reported answers (issue #11).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "assessment_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_templates")),
        sa.UniqueConstraint(
            "template_id", "version", name=op.f("uq_assessment_templates_template_id_version")
        ),
    )
    op.create_index(
        op.f("ix_assessment_templates_template_id"),
        "assessment_templates",
        ["template_id"],
        unique=False,
    )
    op.create_table(
        "assessment_rounds",
        sa.Column("round_id", sa.String(length=36), nullable=False),
        sa.Column("template_id", sa.String(length=63), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("countries", sa.JSON(), nullable=False),
        sa.Column("dissemination", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("round_id", name=op.f("pk_assessment_rounds")),
    )
    op.create_index(
        op.f("ix_assessment_rounds_template_id"),
        "assessment_rounds",
        ["template_id"],
        unique=False,
    )
    op.create_table(
        "assessment_round_queries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.String(length=36), nullable=False),
        sa.Column("indicator_id", sa.String(length=40), nullable=False),
        sa.Column("breakdown", sa.JSON(), nullable=False),
        sa.Column("agreement_id", sa.String(length=100), nullable=False),
        sa.Column("query_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["assessment_rounds.round_id"],
            name=op.f("fk_assessment_round_queries_round_id_assessment_rounds"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_round_queries")),
    )
    op.create_index(
        op.f("ix_assessment_round_queries_round_id"),
        "assessment_round_queries",
        ["round_id"],
        unique=False,
    )
    op.create_table(
        "assessment_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.String(length=36), nullable=False),
        sa.Column("country", sa.String(length=3), nullable=False),
        sa.Column("indicator_id", sa.String(length=40), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("answered_by", sa.String(length=200), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["assessment_rounds.round_id"],
            name=op.f("fk_assessment_answers_round_id_assessment_rounds"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_answers")),
        sa.UniqueConstraint(
            "round_id",
            "country",
            "indicator_id",
            name=op.f("uq_assessment_answers_round_id_country_indicator_id"),
        ),
    )
    op.create_index(
        op.f("ix_assessment_answers_round_id"),
        "assessment_answers",
        ["round_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_assessment_answers_round_id"), table_name="assessment_answers")
    op.drop_table("assessment_answers")
    op.drop_index(
        op.f("ix_assessment_round_queries_round_id"), table_name="assessment_round_queries"
    )
    op.drop_table("assessment_round_queries")
    op.drop_index(op.f("ix_assessment_rounds_template_id"), table_name="assessment_rounds")
    op.drop_table("assessment_rounds")
    op.drop_index(op.f("ix_assessment_templates_template_id"), table_name="assessment_templates")
    op.drop_table("assessment_templates")
