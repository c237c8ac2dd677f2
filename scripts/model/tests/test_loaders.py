import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from midline_model import dicomio, loaders
from tests.conftest import ROOT

STUDY = ROOT / "testdata" / "phantom" / "seed4"


def test_rasterize_circle_area():
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    pts = np.stack([50 + 20 * np.sin(t), 60 + 20 * np.cos(t)], axis=1)
    m = loaders.rasterize_polygon(100, 120, pts)
    assert abs(m.sum() - np.pi * 400) / (np.pi * 400) < 0.02
    assert m[50, 60] and not m[50, 85]


def test_rasterize_square_uses_pixel_centres():
    m = loaders.rasterize_polygon(30, 30, np.array([[9.5, 9.5], [9.5, 19.5], [19.5, 19.5], [19.5, 9.5]]))
    assert m.sum() == 100 and m[10:20, 10:20].all()


def test_brats_folder_loads_in_the_dicom_orientation(tmp_path):
    """A BraTS-style case written from the phantom's T2 (as a NIfTI in RAS) loads back as the
    same array the DICOM series gives."""
    vol, dss = dicomio.read_series(STUDY / "T2")
    gtv = np.asarray(nib.load(str(STUDY / "T2.gtv.nii.gz")).dataobj)
    affine = nib.load(str(STUDY / "T2.gtv.nii.gz")).affine
    case = tmp_path / "BraTS-PH-004"
    case.mkdir()
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), affine), str(case / "BraTS-PH-004-t2w.nii.gz"))
    nib.save(nib.Nifti1Image(gtv, affine), str(case / "BraTS-PH-004-seg.nii.gz"))
    c = loaders.brats_cases(tmp_path, "T2")[0]
    np.testing.assert_allclose(c.real, vol, rtol=1e-6)
    np.testing.assert_array_equal(c.gtv, gtv.transpose(2, 1, 0) > 0)
    assert np.allclose(c.spacing, (5.0, 1.25, 1.25))


def test_rtstruct_contours_rasterise_onto_the_series(tmp_path):
    vol, dss = dicomio.read_series(STUDY / "T2")
    k = len(dss) // 2
    row = np.array(dss[k].ImageOrientationPatient[:3], float)
    col = np.array(dss[k].ImageOrientationPatient[3:], float)
    ipp = np.array(dss[k].ImagePositionPatient, float)
    dr, dc = (float(v) for v in dss[k].PixelSpacing)
    t = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    r, c = 80 + 15 * np.sin(t), 70 + 25 * np.cos(t)  # an ellipse in pixel units
    pts = ipp + np.outer(c * dc, row) + np.outer(r * dr, col)
    rs = Dataset()
    rs.file_meta = FileMetaDataset()
    rs.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    rs.file_meta.MediaStorageSOPClassUID = rs.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    rs.file_meta.MediaStorageSOPInstanceUID = rs.SOPInstanceUID = "2.25.1234"
    roi = Dataset(); roi.ROINumber = 1; roi.ROIName = "GTV"
    rs.StructureSetROISequence = Sequence([roi])
    img = Dataset(); img.ReferencedSOPInstanceUID = dss[k].SOPInstanceUID
    contour = Dataset(); contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.ContourImageSequence = Sequence([img])
    contour.NumberOfContourPoints = len(pts)
    contour.ContourData = [f"{v:.4f}" for v in pts.ravel()]
    rc = Dataset(); rc.ReferencedROINumber = 1; rc.ContourSequence = Sequence([contour])
    rs.ROIContourSequence = Sequence([rc])
    path = tmp_path / "rs.dcm"
    rs.save_as(path, enforce_file_format=True)
    case = loaders.load_dicom_case(STUDY / "T2", path, "GTV")
    assert case.gtv[k].sum() > 0 and case.gtv.sum() == case.gtv[k].sum()
    area = np.pi * 15 * 25
    assert abs(case.gtv[k].sum() - area) / area < 0.03
    assert case.gtv[k, 80, 70] and not case.gtv[k, 80, 100]


def test_dicom_cases_come_in_the_model_orientation():
    """A series stored feet-first, prone or with rows and columns swapped comes back as the
    head-first supine one: slices up, rows to the back, columns to the left."""
    vol = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    gtv = vol % 7 == 0
    x, y, z = np.eye(3)
    cases = {  # row and column direction cosines, and how the stored array relates to vol
        "hfs": (x, y, lambda v: v),
        "hfp": (-x, -y, lambda v: v[:, ::-1, ::-1]),
        "ffs": (-x, y, lambda v: v[::-1, :, ::-1]),  # normal points down: read top slice first
        "swapped": (y, x, lambda v: v.transpose(0, 2, 1)[::-1]),  # normal y x x points down
        "swapped, up": (y, -x, lambda v: v.transpose(0, 2, 1)[:, ::-1]),
    }
    for name, (row, col, store) in cases.items():
        real, mask, pixel = loaders.to_model_orientation(store(vol), store(gtv), row, col, (0.5, 0.7), name)
        np.testing.assert_array_equal(real, vol, err_msg=name)
        np.testing.assert_array_equal(mask, gtv, err_msg=name)
        assert pixel == ((0.7, 0.5) if name.startswith("swapped") else (0.5, 0.7)), name
    with pytest.raises(ValueError, match="not an axial series"):
        loaders.to_model_orientation(vol, gtv, y, -z, (1.0, 1.0), "sagittal")
