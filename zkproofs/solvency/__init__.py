"""Exchange-wide proof of solvency for leveraged accounts (issue 12): a Merkle sum tree of Pedersen commitments
over every account, reserves >= total equity, and stress solvency (per published scenario, the deficits left
after each account's collateral fit inside the insurance fund), with per-account inclusion files; scaled out on
Ray. Protocol, leakage and limits: ``zkproofs/NOTES.md``, section "Exchange-wide solvency".

Public API: :class:`SolvencyParams`, :class:`AccountWitness`, :class:`SecretSource` (and the TEST-ONLY
:class:`SeededSecretSource`), :func:`prove_solvency`, :func:`verify_solvency_file`, :func:`verify_bundle_dict`,
:func:`verify_inclusion`, :func:`inline_bundle`, :func:`load_bundle`.
"""
from .distributed import inline_bundle, load_bundle, prove_solvency, ray_init, verify_solvency_file
from .protocol import verify_bundle_dict, verify_inclusion
from .statement import SOLVENCY_VERSION, AccountWitness, SecretSource, SeededSecretSource, SolvencyParams

__all__ = ["SOLVENCY_VERSION", "SolvencyParams", "AccountWitness", "SecretSource", "SeededSecretSource",
           "prove_solvency", "verify_solvency_file", "verify_bundle_dict", "verify_inclusion", "inline_bundle",
           "load_bundle", "ray_init"]
