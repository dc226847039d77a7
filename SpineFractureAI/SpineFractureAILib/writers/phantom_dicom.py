"""The header every DICOM object our phantom writers make shares: file meta, SOP class and instance,
study and series, a synthetic patient, a fixed date (so the same phantom gives the same files)."""
from __future__ import annotations

import datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

PHANTOM_DAY = datetime.datetime(2026, 1, 1)


def phantom_dataset(sop_class: str, instance_uid: str, study_uid: str, series_uid: str, modality: str,
                    description: str, instance_number: int = 1, patient_id: str = "PHANTOM") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = instance_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.Modality = modality
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Phantom^Spine", patient_id, "", "O"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = PHANTOM_DAY.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = PHANTOM_DAY.strftime("%H%M%S")
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
    ds.SeriesNumber, ds.InstanceNumber = 1, instance_number
    ds.SeriesDescription = description
    ds.Manufacturer = "SpineFractureAI"
    return ds
