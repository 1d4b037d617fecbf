"""Judges: the verifier, captioner and proposer roles of the NPC loop."""

from npc_rt.judges.base import Caption, Captioner, Judges, Proposal, Proposer, Verdict, Verifier

__all__ = ["Caption", "Captioner", "Judges", "Proposal", "Proposer", "Verdict", "Verifier"]
