"""Assessment tables: registered templates, rounds, each round's queries, self-reported answers.

Only template text, query ids (their results live with the queries) and the country teams'
own answers are stored; no node data.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base
from runtime.db import UtcDateTime


class TemplateRow(Base):
    __tablename__ = "assessment_templates"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[str] = mapped_column(String(63), index=True)
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RoundRow(Base):
    __tablename__ = "assessment_rounds"

    round_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    template_id: Mapped[str] = mapped_column(String(63), index=True)
    template_version: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(20))
    # running: queries asked and answers open; closed: answers frozen; failed: an outage
    # stopped the queries being asked (see hub.assessments.run).
    status: Mapped[str] = mapped_column(String(20))
    # UN M49 country code -> agreement id its DP indicators run under.
    countries: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The most restrictive dissemination level of the round's agreements.
    dissemination: Mapped[str] = mapped_column(String(20))
    created_by: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RoundQueryRow(Base):
    """One federated query of a round: an indicator's breakdown under one agreement."""

    __tablename__ = "assessment_round_queries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[str] = mapped_column(ForeignKey("assessment_rounds.round_id"), index=True)
    indicator_id: Mapped[str] = mapped_column(String(40))
    breakdown: Mapped[list[str]] = mapped_column(JSON)
    agreement_id: Mapped[str] = mapped_column(String(100))
    query_id: Mapped[str] = mapped_column(String(36))


class AnswerRow(Base):
    """A country team's answer to a self-reported indicator (the latest replaces earlier)."""

    __tablename__ = "assessment_answers"
    __table_args__ = (UniqueConstraint("round_id", "country", "indicator_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[str] = mapped_column(ForeignKey("assessment_rounds.round_id"), index=True)
    country: Mapped[str] = mapped_column(String(3))
    indicator_id: Mapped[str] = mapped_column(String(40))
    value: Mapped[Any] = mapped_column(JSON)
    score: Mapped[float] = mapped_column(Float)
    answered_by: Mapped[str] = mapped_column(String(200))
    answered_at: Mapped[datetime] = mapped_column(UtcDateTime)
