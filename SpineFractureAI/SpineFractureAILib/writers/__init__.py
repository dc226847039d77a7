"""Writers of results into formats other systems read: DICOM SEG and SR for a PACS, DICOM image
series for phantoms. (The case files .seg.nrrd / .mrk.json / findings.json live in files.py.)"""
