"""Diffusers pipelines: spinal line (mm) -> generated back scans (mm)."""

from pcdiff.pipelines.spine_to_back import SpineToBackPipeline, SpineToBackPipelineOutput, guided_prediction

__all__ = ["SpineToBackPipeline", "SpineToBackPipelineOutput", "guided_prediction"]
