"""A saved model folder (trained_model.save_folder) to and from the Hugging Face Hub, through `huggingface_hub` (the
`hub` extra: pip install "minisora[hub]"). Nothing else in minisora touches the network, and nothing here runs unless
asked: `TinySora.from_pretrained("owner/name")` for a repo id that is no file or folder here, and
`TinySora.push_to_hub("owner/name")`.
"""
import re
from pathlib import Path
from typing import Optional, Union

from .trained_model import FOLDER_FILES

# owner/name, each of letters, digits, "-", "_" and "."; the Hub's own rule (huggingface_hub.utils.validate_repo_id)
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
FILES = (*FOLDER_FILES, "README.md")  # what a download fetches: the folder save_pretrained writes, nothing else


def looks_like_repo_id(path: Union[str, Path]) -> bool:
    """Whether `path`, which is no file or folder here, reads as a Hub repo id: owner/name, not a model.pt."""
    text = str(path)
    return REPO_ID.fullmatch(text) is not None and not text.endswith(".pt")


def _huggingface_hub():
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError("models on the Hugging Face Hub need huggingface_hub: pip install \"minisora[hub]\" "
                          "(or pass a model.pt or a saved folder on this machine)") from None
    return huggingface_hub


def download(repo_id: str, revision: Optional[str] = None, token: Optional[str] = None) -> Path:
    """The model folder of Hub repo `repo_id` (at `revision`), downloaded into the Hub's cache, or a clear OSError
    that names the repo when it cannot be had."""
    huggingface_hub = _huggingface_hub()
    try:
        folder = huggingface_hub.snapshot_download(repo_id, revision=revision, token=token,
                                                   allow_patterns=list(FILES))
    except Exception as error:  # no network, no such repo, no access: each its own class in huggingface_hub
        raise OSError(f"{repo_id} is no file or folder here, and the Hugging Face Hub did not give it "
                      f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); pass a model.pt, a saved "
                      f"folder, or a repo id you can read") from None
    return Path(folder)


def upload(folder: Union[str, Path], repo_id: str, private: Optional[bool] = None, token: Optional[str] = None,
           message: str = "Upload a minisora model") -> str:
    """The files of a saved model `folder` as one commit to Hub repo `repo_id` (made if it does not exist,
    `private` if asked); the commit's address."""
    if REPO_ID.fullmatch(repo_id) is None:
        raise ValueError(f"{repo_id!r} is not a Hub repo id; write it as owner/name")
    missing = [name for name in FILES if not (Path(folder) / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}: upload a folder TinySora.save_pretrained wrote")
    api = _huggingface_hub().HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=message,
                               allow_patterns=list(FILES))
    return str(getattr(commit, "commit_url", commit))
