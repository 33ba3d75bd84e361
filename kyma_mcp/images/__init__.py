"""Image jobs: submitting and polling them (`jobs`), saving their files (`files`), previews (`previews`)."""
