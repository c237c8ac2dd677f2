"""Midline's model toolchain: phantom studies, the segmentation generator, int8 export, evaluation.

Every model the firmware runs is made here; see the modules for each step.
"""
