"""Writing phantom studies as DICOM MR images, in the styles of three scanner vendors.

Each series is MR Image Storage, Explicit VR Little Endian, one file per slice, sharing the
study's Frame of Reference. Names and physics attributes follow each vendor's habits (Siemens
`t2_tse_tra`, GE `AX T2 FSE`, Philips `T2W_TSE`), identities are fictional, and UIDs are derived
from the seed (2.25 UUID-form), so the same seed writes the same files.
"""

from __future__ import annotations

import hashlib

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

IMPLEMENTATION_UID = "2.25.288130536358306786924424413069462512761"  # Midline phantom writer
STUDY_DATE = "20260115"

# SeriesDescription / ProtocolName per vendor and sequence (2D axial; 3D T1C has its own).
NAMES = {
    "SIEMENS": {"T2": "t2_tse_tra_p2", "FLAIR": "t2_tirm_tra_dark-fluid",
                "T1C": "t1_se_tra_KM", "T1C3D_axial": "t1_mprage_tra_p2_iso_KM",
                "T1C3D_sagittal": "t1_mprage_sag_p2_iso_KM"},
    "GE MEDICAL SYSTEMS": {"T2": "AX T2 FSE", "FLAIR": "AX T2 FLAIR", "T1C": "AX T1 SE +C",
                           "T1C3D_axial": "AX 3D BRAVO +C", "T1C3D_sagittal": "SAG 3D BRAVO +C"},
    "Philips": {"T2": "T2W_TSE_TRA", "FLAIR": "T2W_FLAIR_TRA", "T1C": "T1W_SE_TRA_GD",
                "T1C3D_axial": "T1W_3D_TFE_TRA_GD", "T1C3D_sagittal": "T1W_3D_TFE_SAG_GD"},
}
MODELS = {"SIEMENS": "Skyra", "GE MEDICAL SYSTEMS": "DISCOVERY MR750", "Philips": "Ingenia"}


def physics(seq: str, mode: str, vendor: str, field: float) -> dict:
    """Timing and sequence attributes typical of each acquisition."""
    if seq == "T2":
        return dict(ScanningSequence="SE", SequenceVariant="SK", RepetitionTime=5000.0,
                    EchoTime=95.0, EchoTrainLength=15, FlipAngle=150.0)
    if seq == "FLAIR":
        ti = 2500.0 if field >= 3 else 2200.0
        return dict(ScanningSequence=["SE", "IR"], SequenceVariant=["SK", "SP", "MP"],
                    RepetitionTime=9000.0, EchoTime=85.0, InversionTime=ti, EchoTrainLength=16,
                    FlipAngle=150.0)
    if mode == "3d":
        return dict(ScanningSequence=["GR", "IR"], SequenceVariant=["SK", "SP", "MP"],
                    RepetitionTime=2300.0 if vendor == "SIEMENS" else 8.2,
                    EchoTime=2.3 if vendor == "SIEMENS" else 3.2, InversionTime=900.0,
                    FlipAngle=8.0, EchoTrainLength=1, MRAcquisitionType="3D")
    return dict(ScanningSequence="SE", SequenceVariant="SK", RepetitionTime=550.0, EchoTime=10.0,
                EchoTrainLength=1, FlipAngle=90.0)


def _uid(seed: int | str, *parts) -> str:
    """A UID under 2.25 made from a hash of the seed and the parts, so the same seed repeats it
    (pydicom's generate_uid ignores its entropy sources under 2.25)."""
    h = hashlib.sha256("/".join(["midline-phantom", str(seed), *map(str, parts)]).encode())
    return "2.25." + str(int.from_bytes(h.digest()[:16], "big"))


def nifti_affine(orientation: np.ndarray, positions: np.ndarray, spec) -> np.ndarray:
    """The RAS affine of an array indexed (column, row, slice) on the series' grid."""
    row, col = orientation
    dr, dc = spec.pixel_spacing
    step = positions[1] - positions[0] if len(positions) > 1 else np.cross(row, col) * spec.slice_spacing
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = row * dc, col * dr, step, positions[0]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _ds(v: float) -> str:
    """A decimal string of at most 16 characters."""
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def write_study(study, out: Path) -> dict:
    """Writes every series; returns the UIDs used (study, frame of reference, per series)."""
    # A study made with overrides (another position, plane, site, grid, no lesion) is other
    # images than the seed's own: other UIDs. A --small study shares its seed's (the committed
    # test form of a seed; the full form is never written beside it).
    seed = f"{study.seed}/{study.variant}" if study.variant else study.seed
    uids = {"study": _uid(seed, "study"), "frame_of_reference": _uid(seed, "for")}
    for n, (seq, s) in enumerate(study.series.items(), start=1):
        series_uid = _uid(seed, seq, "series")
        folder = out / seq
        folder.mkdir(parents=True, exist_ok=True)
        instances = []
        for k in range(s.pixels.shape[0]):
            sop = _uid(seed, seq, "instance", k)
            ds = _dataset(study, seq, s, n, k, uids, series_uid, sop)
            ds.save_as(folder / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
            instances.append(sop)
        uids[seq] = {"series": series_uid, "instances": instances}
    return uids


def _dataset(study, seq, s, series_number, k, uids, series_uid, sop) -> Dataset:
    spec, vendor = s.spec, study.vendor
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = "MIDLINE_PHANTOM"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    three_d = spec.mode == "3d"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"] if not three_d else \
        ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = STUDY_DATE
    ds.StudyTime = "093000"
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = f"09{30 + 5 * series_number:02d}00"
    ds.AccessionNumber = f"PH{study.seed:06d}"
    ds.Modality = "MR"
    ds.Manufacturer = vendor
    ds.InstitutionName = "Midline Phantom Lab"
    ds.ReferringPhysicianName = "PHANTOM^REFERRER"
    ds.StationName = "PHANTOM01"
    ds.StudyDescription = "MRI BRAIN W/WO CONTRAST"
    name_key = seq if not three_d else f"T1C3D_{spec.plane}"
    ds.SeriesDescription = NAMES[vendor][name_key]
    ds.ProtocolName = NAMES[vendor][name_key]
    ds.ManufacturerModelName = MODELS[vendor]
    p = study.patient
    ds.PatientName = p["name"]
    ds.PatientID = p["id"]
    ds.PatientBirthDate = p["birth_date"]
    ds.PatientSex = p["sex"]
    ds.PatientAge = f"{p['age_years']:03d}Y"
    ds.BodyPartExamined = "BRAIN"
    ds.MRAcquisitionType = "2D"
    ds.ScanOptions = ""
    for key, value in physics(seq, spec.mode, vendor, study.field_strength).items():
        setattr(ds, key, value)
    ds.SliceThickness = _ds(spec.slice_thickness)
    ds.SpacingBetweenSlices = _ds(spec.slice_spacing)
    ds.MagneticFieldStrength = _ds(study.field_strength)
    ds.ImagingFrequency = _ds(42.577 * study.field_strength)
    ds.ImagedNucleus = "1H"
    ds.PatientPosition = spec.position
    if seq == "T1C":
        ds.ContrastBolusAgent = "GADOBUTROL 1.0 MMOL/ML"
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [_ds(v) for v in s.positions[k]]
    ds.ImageOrientationPatient = [_ds(v) for v in s.orientation.ravel()]
    ds.FrameOfReferenceUID = uids["frame_of_reference"]
    ds.PositionReferenceIndicator = ""
    normal = np.cross(*s.orientation)
    ds.SliceLocation = _ds(float(np.dot(s.positions[k], normal)))
    ds.ImagesInAcquisition = s.pixels.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = spec.rows, spec.columns
    ds.PixelSpacing = [_ds(v) for v in spec.pixel_spacing]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    slope, intercept = s.rescale
    if vendor == "Philips" or slope != 1.0:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = _ds(slope), _ds(intercept), "US"
    img = s.pixels[k]
    ds.WindowCenter = _ds(float(np.percentile(s.pixels, 99)) / 2)
    ds.WindowWidth = _ds(float(np.percentile(s.pixels, 99)))
    ds.PixelData = np.ascontiguousarray(img).astype("<u2").tobytes()
    return ds


def read_series(folder: Path) -> tuple[np.ndarray, list[Dataset]]:
    """A series folder back as a volume (slices sorted along the normal, rescaled) and its
    headers, for tests and for training on DICOM folders."""
    dss = [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]
    if not dss:
        raise ValueError(f"{folder}: no DICOM files")
    row = np.array(dss[0].ImageOrientationPatient[:3], float)
    col = np.array(dss[0].ImageOrientationPatient[3:], float)
    normal = np.cross(row, col)
    dss.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    vol = np.stack([d.pixel_array.astype(np.float32) * float(getattr(d, "RescaleSlope", 1))
                    + float(getattr(d, "RescaleIntercept", 0)) for d in dss])
    return vol, dss


def spacing(dss: list[Dataset]) -> tuple[float, float, float]:
    """(slice, row, column) spacing in mm of a series sorted by read_series: the slice spacing is
    the mean distance between neighbouring positions along the normal (0 for one slice)."""
    row = np.array(dss[0].ImageOrientationPatient[:3], float)
    col = np.array(dss[0].ImageOrientationPatient[3:], float)
    d = [float(np.dot(np.array(d.ImagePositionPatient, float), np.cross(row, col))) for d in dss]
    slice_mm = (d[-1] - d[0]) / (len(d) - 1) if len(d) > 1 else 0.0
    r, c = (float(x) for x in dss[0].PixelSpacing)
    return slice_mm, r, c
