"""Parametrised fast detector (in the spirit of Delphes cards), on torch, any device.

Particle-level objects (:class:`ParticleObjects`, e.g. from hard events and a
process's ``final_state``, or from :mod:`forward.shower`) go in; :class:`RecoEvents`
(smeared objects with types, MET, selection and exact links to the particle-level
objects and hard events) come out::

    from forward.detector import Detector, ParticleObjects
    reco = Detector("cms")(ParticleObjects.from_hard(events, (11, -11)), seed=1)
    reco = Detector("cms").reconstruct(events, (11, -11), seed=1)     # the same

Every detector follows one protocol (:mod:`forward.detector.protocol`):
``reconstruct(events, final_state) -> RecoEvents``; the card detector and the
closed-form :class:`GaussianLeptonDetector` also give their exact lepton acceptance
and transfer (:mod:`forward.detector.closed_form`).
"""

from forward.detector.card import (
    BTagging,
    DetectorCard,
    Efficiency,
    ObjectConfig,
    Resolution,
    Selection,
    default_card,
    load_card,
)
from forward.detector.closed_form import GaussianClosedForm, LeptonResponse
from forward.detector.gaussian import GaussianLeptonDetector
from forward.detector.objects import ObjectType, ParticleObjects, RecoEvents, particle_class
from forward.detector.protocol import (
    DetectorModel,
    describe_detector,
    detector_from_description,
    get_detector,
)
from forward.detector.smearing import (
    Detector,
    efficiency,
    make_generator,
    relative_resolution,
    smear,
)

__all__ = [
    "BTagging",
    "Detector",
    "DetectorCard",
    "DetectorModel",
    "GaussianClosedForm",
    "GaussianLeptonDetector",
    "LeptonResponse",
    "Efficiency",
    "ObjectConfig",
    "ObjectType",
    "ParticleObjects",
    "RecoEvents",
    "Resolution",
    "Selection",
    "default_card",
    "describe_detector",
    "detector_from_description",
    "efficiency",
    "get_detector",
    "load_card",
    "make_generator",
    "particle_class",
    "relative_resolution",
    "smear",
]
